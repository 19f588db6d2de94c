package config_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/config"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// specExample is the documented configuration, with its field names and nesting.
const specExample = `
listen: 127.0.0.1:8080
upstream: http://127.0.0.1:9000
admin_listen: 127.0.0.1:9090
auth_listen: ""
max_body_bytes: 1048576
scheme: hmac
keys:
  - id: client-a
    secrets: ["${CLIENT_A_SECRET}"]
  - id: client-b
    secrets: ["base64:c2VjcmV0LWItMDEyMzQ1Njc4OQ==", "old-secret-0123456789"]
jwt: {header: Authorization, prefix: Bearer, jwks_url: "", issuer: "", audience: "",
      leeway: 30s, bind: [htm, htu, bsh], dpop: false}
rfc9421: {required_components: ["@method", "@target-uri", "content-digest"]}
timestamp: {tolerance: 5m, future_skew: 5m}
nonce: {store: memory, mode: exact, capacity: 1000000, false_positive_rate: 1e-9,
        local_shield: false}
idempotency: {enabled: true, required: true, methods: [POST, PATCH], ttl: 24h,
              lease: 30s, max_response_bytes: 1048576, store_server_errors: false,
              store: memory, derive_key: "off", derive_window: 5m}
redis: {addrs: [127.0.0.1:6379], master_name: "", username: "", password: "",
        db: 0, tls: false, timeout: 200ms, key_prefix: rg}
postgres: {dsn: ""}
fail_mode: closed
`

func TestParseSpecExample(t *testing.T) {
	cfg, err := config.Parse([]byte(specExample), env(map[string]string{"CLIENT_A_SECRET": "s3cr3t: #not yaml"}))
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:9000", cfg.Upstream)
	assert.Equal(t, "127.0.0.1:9090", cfg.AdminListen)
	require.Len(t, cfg.Keys, 2)
	assert.Equal(t, []string{"s3cr3t: #not yaml"}, cfg.Keys[0].Secrets, "expanded text is a value, never YAML structure")
	assert.Equal(t, 5*time.Minute, cfg.Timestamp.Tolerance.D())
	assert.Equal(t, 30*time.Second, cfg.JWT.Leeway.D())
	assert.Equal(t, 24*time.Hour, cfg.Idempotency.TTL.D())
	assert.Equal(t, 200*time.Millisecond, cfg.Redis.Timeout.D())
	assert.Equal(t, 1e-9, cfg.Nonce.FalsePositiveRate)
	assert.Equal(t, []string{"POST", "PATCH"}, cfg.Idempotency.Methods)
	assert.True(t, *cfg.Idempotency.Enabled)
	assert.Equal(t, "closed", cfg.FailMode)
	keys, err := cfg.SignatureKeys()
	require.NoError(t, err)
	assert.Equal(t, []byte("secret-b-0123456789"), keys[1].Secrets[0])
}

func TestExpandKeepsTypes(t *testing.T) {
	const doc = `
keys: [{id: a, secrets: ["${S}", "${N}"]}]
redis: {addrs: ["${ADDR}"], db: "${DB}", tls: "${TLS}"}
nonce: {store: redis}
`
	cfg, err := config.Parse([]byte(doc), env(map[string]string{"S": "yes-0123456789abcdef", "N": "01234567890123456789", "ADDR": "127.0.0.1:6380", "DB": "3", "TLS": "true"}))
	require.NoError(t, err)
	assert.Equal(t, []string{"yes-0123456789abcdef", "01234567890123456789"}, cfg.Keys[0].Secrets, "a secret that looks like a number stays a string")
	assert.Equal(t, 3, cfg.Redis.DB, "a number field takes a number")
	assert.True(t, cfg.Redis.TLS, "a bool field takes a bool")
	assert.Equal(t, []string{"127.0.0.1:6380"}, cfg.Redis.Addrs)
}

// redis.tagging sits beside the other redis: fields, defaults to key.
func TestRedisTagging(t *testing.T) {
	cfg, err := config.Parse([]byte("keys: [{id: a, secrets: [x-0123456789abcdef]}]\nnonce: {store: redis}\nredis: {addrs: [127.0.0.1:6379], key_prefix: acme, tagging: principal}\n"), env(nil))
	require.NoError(t, err)
	assert.Equal(t, "principal", cfg.Redis.Tagging)
	assert.Equal(t, "acme", cfg.Redis.KeyPrefix)
	cfg, err = config.Parse([]byte("keys: [{id: a, secrets: [x-0123456789abcdef]}]\nnonce: {store: redis}\nredis: {addrs: [127.0.0.1:6379]}\n"), env(nil))
	require.NoError(t, err)
	assert.Equal(t, "key", cfg.Redis.Tagging)
}

// A variable's value is text: one that YAML would read as null, a bool or
// a number reaches a string field as that literal text, never as null
// (which would empty the field) or a reformatted value.
func TestExpandedValuesStayLiteral(t *testing.T) {
	values := []string{"null", "~", "Null", "NULL", "true", "False", "yes", "off", "123", "0123", "0x1F", "1e3", ".inf", "-.NaN", "2001-12-14", "!!null", "&anchor", "*alias", "'quoted'", `"dq"`, "a: b", "- item", "[x]", "{x: y}", "#comment", " padded ", "", "multi\nline"}
	docs := []struct{ name, doc string }{
		{"double-quoted", "keys: [{id: a, secrets: [0123456789abcdef]}]\njwt: {issuer: \"${V}\", audience: \"${V}\"}\nredis: {password: \"${V}\"}\n"},
		{"single-quoted", "keys: [{id: a, secrets: [0123456789abcdef]}]\njwt: {issuer: '${V}', audience: '${V}'}\nredis: {password: '${V}'}\n"},
		{"plain", "keys: [{id: a, secrets: [0123456789abcdef]}]\njwt:\n  issuer: ${V}\n  audience: ${V}\nredis:\n  password: ${V}\n"},
	}
	for _, d := range docs {
		for _, v := range values {
			t.Run(d.name+"/"+v, func(t *testing.T) {
				cfg, err := config.Parse([]byte(d.doc), env(map[string]string{"V": v}))
				require.NoError(t, err)
				assert.Equal(t, v, cfg.JWT.Issuer)
				assert.Equal(t, v, cfg.JWT.Audience)
				assert.Equal(t, v, cfg.Redis.Password)
			})
		}
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"unknown field", "keys: [{id: a, secrets: [x-0123456789abcdef]}]\nnonce: {stroe: memory}\n", "stroe"},
		{"unknown top-level", "keys: [{id: a, secrets: [x-0123456789abcdef]}]\nlisten_addr: x\n", "listen_addr"},
		{"unset variable", "keys: [{id: a, secrets: [\"${MISSING_SECRET}\"]}]\n", "MISSING_SECRET is not set"},
		{"bad duration", "keys: [{id: a, secrets: [x-0123456789abcdef]}]\ntimestamp: {tolerance: 5 minutes}\n", "duration"},
		{"bad mode", "keys: [{id: a, secrets: [x-0123456789abcdef]}]\nnonce: {mode: fuzzy}\n", "nonce.mode"},
		{"bad fail mode", "keys: [{id: a, secrets: [x-0123456789abcdef]}]\nfail_mode: sometimes\n", "fail_mode"},
		{"no keys", "listen: 127.0.0.1:1\n", "keys"},
		{"key without secret", "keys: [{id: a}]\n", "keys[0].secrets"},
		{"duplicate key", "keys: [{id: a, secrets: [x-0123456789abcdef]}, {id: a, secrets: [y-0123456789abcdef]}]\n", "keys[1].id"},
		{"bad base64 secret", "keys: [{id: a, secrets: [\"base64:!!\"]}]\n", "keys[0].secrets[0]"},
		{"bad upstream", "keys: [{id: a, secrets: [x-0123456789abcdef]}]\nupstream: ftp://x\n", "upstream"},
		{"redis without addrs", "keys: [{id: a, secrets: [x-0123456789abcdef]}]\nnonce: {store: redis}\n", "redis.addrs"},
		{"unknown tagging", "keys: [{id: a, secrets: [x-0123456789abcdef]}]\nnonce: {store: redis}\nredis: {addrs: [127.0.0.1:6379], tagging: nonce}\n", "redis.tagging"},
		{"bad fp rate", "keys: [{id: a, secrets: [x-0123456789abcdef]}]\nnonce: {false_positive_rate: 2}\n", "nonce.false_positive_rate"},
		{"unknown scheme", "keys: [{id: a, secrets: [x-0123456789abcdef]}]\nscheme: md5\n", "scheme"},
		{"lower-case method", "keys: [{id: a, secrets: [x-0123456789abcdef]}]\nidempotency: {methods: [post]}\n", "idempotency.methods[0]"},
		{"empty", "", "empty"},
		{"not yaml", "keys: [\n", "config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tt.doc), env(nil))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestExpand(t *testing.T) {
	lookup := env(map[string]string{"A": "1", "B_2": "two"})
	tests := []struct{ in, want, err string }{
		{"plain", "plain", ""},
		{"${A}", "1", ""},
		{"x${A}y${B_2}z", "x1ytwoz", ""},
		{"$$", "$", ""},
		{"$$${A}", "$1", ""},
		{"cost $5", "cost $5", ""},
		{"trailing $", "trailing $", ""},
		{"${A", "", "unterminated"},
		{"${}", "", "invalid variable name"},
		{"${1A}", "", "invalid variable name"},
		{"${NOPE}", "", "NOPE is not set"},
	}
	for _, tt := range tests {
		got, err := config.Expand(tt.in, lookup)
		if tt.err != "" {
			require.Error(t, err, tt.in)
			assert.Contains(t, err.Error(), tt.err)
			continue
		}
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, got, tt.in)
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "rg.yaml")
	require.NoError(t, os.WriteFile(p, []byte("keys: [{id: a, secrets: [\"${RG_TEST_SECRET}\"]}]\n"), 0o600))
	t.Setenv("RG_TEST_SECRET", "from-env-0123456789")
	cfg, err := config.Load(p)
	require.NoError(t, err)
	assert.Equal(t, "from-env-0123456789", cfg.Keys[0].Secrets[0])
	assert.Equal(t, replayguard.DefaultMaxBodyBytes, int(cfg.MaxBodyBytes))
	_, err = config.Load(filepath.Join(dir, "missing.yaml"))
	require.Error(t, err)
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(specExample))
	f.Add([]byte("keys: [{id: a, secrets: [x-0123456789abcdef]}]\n"))
	f.Add([]byte("keys: [{id: a, secrets: [\"${X}\"]}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse(data, env(map[string]string{"X": "v"}))
		if err != nil {
			return
		}
		// Whatever parses must be valid.
		require.NoError(t, cfg.Validate())
	})
}
