package traefik

import (
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/redisstore"
)

// fieldPaths lists the dotted paths of t's fields, named by the tag key
// (the part before the first comma), descending into structs and the
// element struct of slices.
func fieldPaths(t reflect.Type, tag, prefix string, skip map[string]bool) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get(tag), ",")
		if name == "" || name == "-" || skip[name] {
			continue
		}
		p := prefix + name
		out = append(out, p)
		ft := f.Type
		if ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Time{}) {
			out = append(out, fieldPaths(ft, tag, p+".", nil)...)
		}
	}
	sort.Strings(out)
	return out
}

// TestConfigMirrorsTheModel keeps the plugin's options one configuration
// model with the binary's YAML and the Caddy module's JSON: every field of
// the model has an option of the same path, camelCased, and no option
// exists that the model lacks.
func TestConfigMirrorsTheModel(t *testing.T) {
	var model []string
	for _, p := range fieldPaths(reflect.TypeOf(replayguard.Config{}), "yaml", "", nil) {
		model = append(model, camel(p))
	}
	// The redis: section belongs to the Redis store's package.
	model = append(model, "redis")
	for _, p := range fieldPaths(reflect.TypeOf(redisstore.Config{}), "yaml", "redis.", nil) {
		model = append(model, camel(p))
	}
	plugin := fieldPaths(reflect.TypeOf(Config{}), "json", "", nil)
	sort.Strings(model)
	sort.Strings(plugin)
	assert.Equal(t, model, plugin)
}

func TestModelConversion(t *testing.T) {
	yes, no := true, false
	c := &Config{
		MaxBodyBytes: 2048,
		Scheme:       "jwt",
		Keys:         []Key{{ID: "k1", Algorithm: "EdDSA", JWK: map[string]any{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}},
		HMAC:         HMAC{KeyIDHeader: "A", TimestampHeader: "B", NonceHeader: "C", SignatureHeader: "D"},
		JWT:          JWT{Header: "X-Token", Prefix: "Token", Issuer: "iss", Audience: "aud", Leeway: "10s", Bind: []string{"htm"}, DPoP: true},
		RFC9421:      RFC9421{RequiredComponents: []string{"@method"}},
		Timestamp:    Timestamp{Tolerance: "2m", FutureSkew: "30s"},
		Nonce:        Nonce{Store: "redis", Capacity: 10, FalsePositiveRate: 1e-6, MaxEntries: 7, MaxSubFilters: 3, KeyShare: 0.25},
		Idempotency: Idempotency{Enabled: &yes, Required: &no, Methods: []string{"POST"}, TTL: "1d", Lease: "10s",
			MaxResponseBytes: 99, StoreServerErrors: true, Store: "redis", DeriveKey: "fingerprint", DeriveWindow: "1m",
			FingerprintHeaders: []string{"X-Tenant"}, MemoryMaxBytes: 1 << 20, KeyShare: 0.5},
		Redis:    Redis{Addrs: []string{"127.0.0.1:6379"}, Username: "u", Password: "p", DB: 2, TLS: true, Timeout: "150ms", KeyPrefix: "px"},
		FailMode: "open",
	}
	m, rc, err := c.model()
	require.NoError(t, err)
	assert.Equal(t, int64(2048), m.MaxBodyBytes)
	assert.Equal(t, "jwt", m.Scheme)
	require.Len(t, m.Keys, 1)
	assert.Equal(t, "EdDSA", m.Keys[0].Algorithm)
	assert.Equal(t, replayguard.HMACConfig{KeyIDHeader: "A", TimestampHeader: "B", NonceHeader: "C", SignatureHeader: "D"}, m.HMAC)
	assert.Equal(t, replayguard.JWTConfig{Header: "X-Token", Prefix: "Token", Issuer: "iss", Audience: "aud",
		Leeway: replayguard.Duration(10 * time.Second), Bind: []string{"htm"}, DPoP: true}, m.JWT)
	assert.Equal(t, []string{"@method"}, m.RFC9421.RequiredComponents)
	assert.Equal(t, 2*time.Minute, m.Timestamp.Tolerance.D())
	assert.Equal(t, 30*time.Second, m.Timestamp.FutureSkew.D())
	assert.Equal(t, replayguard.NonceConfig{Store: "redis", Mode: "exact", Capacity: 10, FalsePositiveRate: 1e-6, MaxEntries: 7,
		MaxSubFilters: 3, KeyShare: 0.25}, m.Nonce)
	id := m.Idempotency
	assert.True(t, *id.Enabled)
	assert.False(t, *id.Required)
	assert.Equal(t, 24*time.Hour, id.TTL.D())
	assert.Equal(t, 10*time.Second, id.Lease.D())
	assert.Equal(t, time.Minute, id.DeriveWindow.D())
	assert.Equal(t, int64(99), id.MaxResponseBytes)
	assert.True(t, id.StoreServerErrors)
	assert.Equal(t, "fingerprint", id.DeriveKey)
	assert.Equal(t, []string{"X-Tenant"}, id.FingerprintHeaders)
	assert.Equal(t, int64(1<<20), id.MemoryMaxBytes)
	assert.Equal(t, 0.5, id.KeyShare)
	assert.Equal(t, redisstore.Config{Addrs: []string{"127.0.0.1:6379"}, Username: "u", Password: "p", DB: 2, TLS: true,
		Timeout: replayguard.Duration(150 * time.Millisecond), KeyPrefix: "px"}, rc)
	assert.Equal(t, "open", m.FailMode)
}

func TestCamel(t *testing.T) {
	for in, want := range map[string]string{
		"max_body_bytes":          "maxBodyBytes",
		"keys[0].public_key_file": "keys[0].publicKeyFile",
		"jwt.jwks_url":            "jwt.jwksUrl",
		"rfc9421":                 "rfc9421",
		"timestamp.future_skew":   "timestamp.futureSkew",
	} {
		assert.Equal(t, want, camel(in), in)
	}
}
