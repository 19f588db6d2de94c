package replayguardcaddy

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/config"
	"github.com/replayguard/replayguard/disk"
	"github.com/replayguard/replayguard/postgres"
	"github.com/replayguard/replayguard/redisstore"
)

func unmarshal(t *testing.T, input string) (*Handler, error) {
	t.Helper()
	h := new(Handler)
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
	return h, err
}

func dur(d time.Duration) replayguard.Duration { return replayguard.Duration(d) }

func boolp(b bool) *bool { return &b }

// TestUnmarshalCaddyfileEverySubdirective sets every field the Caddyfile
// knows and compares with the configuration model.
func TestUnmarshalCaddyfileEverySubdirective(t *testing.T) {
	h, err := unmarshal(t, `replayguard {
		max_body_bytes 2MiB
		scheme hmac
		key client-a secret-one "secret two"
		key partner-b {
			algorithm EdDSA
			public_key_file /etc/replayguard/partner-b.pem
		}
		key partner-c {
			secrets base64:c2VjcmV0 {env.PARTNER_C}
			jwk `+"`"+`{"kty":"OKP","crv":"Ed25519","x":"abc"}`+"`"+`
			algorithm EdDSA
		}
		hmac {
			key_id_header X-Client
			timestamp_header X-Time
			nonce_header X-Once
			signature_header X-Sig
		}
		jwt {
			header X-Token
			prefix Token
			jwks_url https://idp.example/jwks.json
			issuer https://idp.example/
			audience api
			leeway 45s
			bind htm htu
			dpop
		}
		rfc9421 {
			required_components @method @target-uri content-digest
		}
		timestamp {
			tolerance 2m
			future_skew 30s
		}
		nonce {
			store redis
			mode bloom
			capacity 5000
			false_positive_rate 1e-6
			local_shield
			max_entries 100
			max_subfilters 6
			key_share 0.25
		}
		idempotency {
			enabled
			required false
			methods POST PUT
			ttl 1d
			lease 10s
			max_response_bytes 65536
			store_server_errors true
			store postgres
			derive_key fingerprint
			derive_window 1m
			fingerprint_headers Content-Type X-Tenant
			memory_max_bytes 64MiB
			key_share 0.5
		}
		redis {
			addrs 127.0.0.1:6379 127.0.0.1:6380
			master_name mymaster
			username rg
			password {env.REDIS_PASSWORD}
			db 2
			tls
			timeout 150ms
			key_prefix rgx
			tagging principal
		}
		postgres {
			dsn "postgres://rg@127.0.0.1/rg?sslmode=disable"
			timeout 2s
		}
		disk {
			path /var/lib/caddy/replayguard
			fsync false
			max_bytes 1GiB
			key_share 0.125
			lock_timeout 30s
			timeout 2s
			reap_interval 500ms
		}
		fail_mode open
	}`)
	require.NoError(t, err)
	want := replayguard.Config{
		MaxBodyBytes: 2 << 20,
		Scheme:       "hmac",
		Keys: []replayguard.KeyConfig{
			{ID: "client-a", Secrets: []string{"secret-one", "secret two"}},
			{ID: "partner-b", Algorithm: "EdDSA", PublicKeyFile: "/etc/replayguard/partner-b.pem"},
			{ID: "partner-c", Secrets: []string{"base64:c2VjcmV0", "{env.PARTNER_C}"}, Algorithm: "EdDSA",
				JWK: map[string]any{"kty": "OKP", "crv": "Ed25519", "x": "abc"}},
		},
		HMAC: replayguard.HMACConfig{KeyIDHeader: "X-Client", TimestampHeader: "X-Time", NonceHeader: "X-Once", SignatureHeader: "X-Sig"},
		JWT: replayguard.JWTConfig{Header: "X-Token", Prefix: "Token", JWKSURL: "https://idp.example/jwks.json",
			Issuer: "https://idp.example/", Audience: "api", Leeway: dur(45 * time.Second), Bind: []string{"htm", "htu"}, DPoP: true},
		RFC9421:   replayguard.RFC9421Config{RequiredComponents: []string{"@method", "@target-uri", "content-digest"}},
		Timestamp: replayguard.TimestampConfig{Tolerance: dur(2 * time.Minute), FutureSkew: dur(30 * time.Second)},
		Nonce: replayguard.NonceConfig{Store: "redis", Mode: "bloom", Capacity: 5000, FalsePositiveRate: 1e-6,
			LocalShield: true, MaxEntries: 100, MaxSubFilters: 6, KeyShare: 0.25},
		Idempotency: replayguard.IdempotencyConfig{Enabled: boolp(true), Required: boolp(false), Methods: []string{"POST", "PUT"},
			TTL: dur(24 * time.Hour), Lease: dur(10 * time.Second), MaxResponseBytes: 65536, StoreServerErrors: true,
			Store: "postgres", DeriveKey: "fingerprint", DeriveWindow: dur(time.Minute), FingerprintHeaders: []string{"Content-Type", "X-Tenant"},
			MemoryMaxBytes: 64 << 20, KeyShare: 0.5},
		FailMode: "open",
	}
	assert.Equal(t, want, h.Config)
	assert.Equal(t, redisstore.Section{Config: redisstore.Config{Addrs: []string{"127.0.0.1:6379", "127.0.0.1:6380"}, MasterName: "mymaster", Username: "rg",
		Password: "{env.REDIS_PASSWORD}", DB: 2, TLS: true, Timeout: dur(150 * time.Millisecond), KeyPrefix: "rgx"}, Tagging: "principal"}, h.Redis)
	assert.Equal(t, postgres.Config{DSN: "postgres://rg@127.0.0.1/rg?sslmode=disable", Timeout: dur(2 * time.Second)}, h.Postgres)
	assert.Equal(t, disk.Config{Path: "/var/lib/caddy/replayguard", Fsync: boolp(false), MaxBytes: 1 << 30, KeyShare: 0.125,
		LockTimeout: dur(30 * time.Second), Timeout: dur(2 * time.Second), ReapInterval: dur(500 * time.Millisecond)}, h.Disk)
}

// TestUnmarshalCaddyfileDiskStores names disk as the store of both
// sections, as the store subdirectives of nonce and idempotency do for
// redis and postgres, with a disk block of its own; nothing set means
// memory.
func TestUnmarshalCaddyfileDiskStores(t *testing.T) {
	h, err := unmarshal(t, `replayguard {
		key a s
		nonce {
			store disk
		}
		idempotency {
			store disk
		}
		disk {
			path replayguard/orders
			fsync
		}
	}`)
	require.NoError(t, err)
	assert.Equal(t, replayguard.StoreDisk, h.Nonce.Store)
	assert.Equal(t, replayguard.StoreDisk, h.Idempotency.Store)
	assert.Equal(t, disk.Config{Path: "replayguard/orders", Fsync: boolp(true)}, h.Disk)

	h, err = unmarshal(t, "replayguard {\n\tkey a s\n\tidempotency {\n\t\tstore disk\n\t}\n}")
	require.NoError(t, err)
	assert.Empty(t, h.Nonce.Store, "the nonce store stays the default (memory)")
	assert.Equal(t, replayguard.StoreDisk, h.Idempotency.Store)
	assert.Equal(t, disk.Config{}, h.Disk, "no disk block: the defaults, path under Caddy's data directory")

	h, err = unmarshal(t, "replayguard {\n\tkey a s\n}")
	require.NoError(t, err)
	model := h.Config
	cfg := model.WithDefaults()
	assert.Equal(t, replayguard.StoreMemory, cfg.Nonce.Store, "the module's default store is memory")
	assert.Equal(t, replayguard.StoreMemory, cfg.Idempotency.Store)
	assert.False(t, cfg.UsesDisk())
}

func TestUnmarshalCaddyfileBooleansAndMinimal(t *testing.T) {
	h, err := unmarshal(t, `replayguard {
		key a s
		jwt {
			dpop false
		}
		nonce {
			local_shield true
		}
		idempotency {
			enabled false
			store_server_errors false
		}
		redis {
			tls false
		}
	}`)
	require.NoError(t, err)
	assert.False(t, h.JWT.DPoP)
	assert.True(t, h.Nonce.LocalShield)
	require.NotNil(t, h.Idempotency.Enabled)
	assert.False(t, *h.Idempotency.Enabled)
	assert.False(t, h.Idempotency.StoreServerErrors)
	assert.False(t, h.Redis.TLS)

	h, err = unmarshal(t, "replayguard {\n\tkey a s\n}")
	require.NoError(t, err)
	assert.Equal(t, replayguard.Config{Keys: []replayguard.KeyConfig{{ID: "a", Secrets: []string{"s"}}}}, h.Config)

	h, err = unmarshal(t, "replayguard")
	require.NoError(t, err, "an empty directive parses; provisioning then asks for keys")
	assert.Empty(t, h.Keys)

	h, err = unmarshal(t, "replayguard {\n\tmax_body_bytes 4096\n\tkey a s\n}")
	require.NoError(t, err)
	assert.EqualValues(t, 4096, h.MaxBodyBytes)
}

// TestUnmarshalCaddyfileErrors checks that bad values are rejected at
// parse time with the field and the Caddyfile position.
func TestUnmarshalCaddyfileErrors(t *testing.T) {
	tests := []struct {
		name, input, want string
		line              int
	}{
		{"argument on directive", "replayguard extra {\n}", "wrong argument count", 1},
		{"unknown subdirective", "replayguard {\n\tlisten :8080\n}", `unknown subdirective "listen"`, 2},
		{"unknown section subdirective", "replayguard {\n\tnonce {\n\t\tsize 3\n\t}\n}", `nonce: unknown subdirective "size"`, 3},
		{"section with argument", "replayguard {\n\tnonce memory\n}", "nonce: takes a block", 2},
		{"scheme without value", "replayguard {\n\tscheme\n}", "scheme: want exactly one value", 2},
		{"scheme with two values", "replayguard {\n\tscheme hmac jwt\n}", "scheme: want exactly one value", 2},
		{"key without id", "replayguard {\n\tkey\n}", "key: want a key id", 2},
		{"key without material", "replayguard {\n\tkey a\n}", `key "a": give secrets, public_key_file or jwk`, 2},
		{"duplicate key", "replayguard {\n\tkey a s\n\tkey a t\n}", `key "a": defined twice`, 3},
		{"unknown key subdirective", "replayguard {\n\tkey a {\n\t\tsecret s\n\t}\n}", `keys[0]: unknown subdirective "secret"`, 3},
		{"bad jwk", "replayguard {\n\tkey a {\n\t\tjwk {nope\n\t}\n}", "jwk: want a JSON object", 3},
		{"bad duration", "replayguard {\n\tkey a s\n\ttimestamp {\n\t\ttolerance 5 minutes\n\t}\n}", "timestamp.tolerance: want exactly one value", 4},
		{"unparsable duration", "replayguard {\n\ttimestamp {\n\t\tfuture_skew soon\n\t}\n}", "timestamp.future_skew: duration", 3},
		{"negative duration", "replayguard {\n\tidempotency {\n\t\tttl -1h\n\t}\n}", "idempotency.ttl: want a positive duration", 3},
		{"bad store", "replayguard {\n\tnonce {\n\t\tstore postgres\n\t}\n}", `nonce.store: "postgres" is not one of memory, disk, redis`, 3},
		{"bad mode", "replayguard {\n\tnonce {\n\t\tmode fuzzy\n\t}\n}", `nonce.mode: "fuzzy" is not one of exact, bloom`, 3},
		{"bad capacity", "replayguard {\n\tnonce {\n\t\tcapacity many\n\t}\n}", "nonce.capacity: want a non-negative integer", 3},
		{"negative capacity", "replayguard {\n\tnonce {\n\t\tmax_entries -5\n\t}\n}", "nonce.max_entries: want a non-negative integer", 3},
		{"bad rate", "replayguard {\n\tnonce {\n\t\tfalse_positive_rate 2\n\t}\n}", "nonce.false_positive_rate: want a number strictly between 0 and 1", 3},
		{"bad key share", "replayguard {\n\tnonce {\n\t\tkey_share 1.5\n\t}\n}", "nonce.key_share: want a fraction above 0 and at most 1", 3},
		{"zero key share", "replayguard {\n\tidempotency {\n\t\tkey_share 0\n\t}\n}", "idempotency.key_share: want a fraction above 0 and at most 1", 3},
		{"bad memory bound", "replayguard {\n\tidempotency {\n\t\tmemory_max_bytes lots\n\t}\n}", "idempotency.memory_max_bytes: want a positive size", 3},
		{"bad bool", "replayguard {\n\tnonce {\n\t\tlocal_shield maybe\n\t}\n}", "nonce.local_shield: want true or false", 3},
		{"two bools", "replayguard {\n\tjwt {\n\t\tdpop true false\n\t}\n}", "jwt.dpop: want at most one value", 3},
		{"bad bind", "replayguard {\n\tjwt {\n\t\tbind htm url\n\t}\n}", `jwt.bind: "url" is not one of htm, htu, bsh`, 3},
		{"empty list", "replayguard {\n\trfc9421 {\n\t\trequired_components\n\t}\n}", "rfc9421.required_components: want at least one value", 3},
		{"lower-case method", "replayguard {\n\tidempotency {\n\t\tmethods POST put\n\t}\n}", "idempotency.methods: want upper-case", 3},
		{"bad derive_key", "replayguard {\n\tidempotency {\n\t\tderive_key always\n\t}\n}", `idempotency.derive_key: "always" is not one of off, fingerprint`, 3},
		{"bad idempotency store", "replayguard {\n\tidempotency {\n\t\tstore mysql\n\t}\n}", `idempotency.store: "mysql"`, 3},
		{"bad size", "replayguard {\n\tmax_body_bytes lots\n}", "max_body_bytes: want a positive size", 2},
		{"zero size", "replayguard {\n\tidempotency {\n\t\tmax_response_bytes 0\n\t}\n}", "idempotency.max_response_bytes: want a positive size", 3},
		{"bad db", "replayguard {\n\tredis {\n\t\tdb first\n\t}\n}", "redis.db: want a non-negative integer", 3},
		{"bad redis subdirective", "replayguard {\n\tredis {\n\t\taddr 127.0.0.1:6379\n\t}\n}", `redis: unknown subdirective "addr"`, 3},
		{"bad postgres subdirective", "replayguard {\n\tpostgres {\n\t\turl x\n\t}\n}", `postgres: unknown subdirective "url"`, 3},
		{"bad hmac subdirective", "replayguard {\n\thmac {\n\t\tkey_header X\n\t}\n}", `hmac: unknown subdirective "key_header"`, 3},
		{"disk with argument", "replayguard {\n\tdisk /var/lib/rg\n}", "disk: takes a block", 2},
		{"bad disk subdirective", "replayguard {\n\tdisk {\n\t\tdir /var/lib/rg\n\t}\n}", `disk: unknown subdirective "dir"`, 3},
		{"two disk paths", "replayguard {\n\tdisk {\n\t\tpath /a /b\n\t}\n}", "disk.path: want exactly one value", 3},
		{"bad fsync", "replayguard {\n\tdisk {\n\t\tfsync sometimes\n\t}\n}", "disk.fsync: want true or false", 3},
		{"bad disk max_bytes", "replayguard {\n\tdisk {\n\t\tmax_bytes plenty\n\t}\n}", "disk.max_bytes: want a positive size", 3},
		{"bad disk key_share", "replayguard {\n\tdisk {\n\t\tkey_share 2\n\t}\n}", "disk.key_share: want a fraction above 0 and at most 1", 3},
		{"bad lock_timeout", "replayguard {\n\tdisk {\n\t\tlock_timeout -1s\n\t}\n}", "disk.lock_timeout: want a positive duration", 3},
		{"bad reap_interval", "replayguard {\n\tdisk {\n\t\treap_interval often\n\t}\n}", "disk.reap_interval: duration", 3},
		{"bad idempotency store for disk spelling", "replayguard {\n\tidempotency {\n\t\tstore bolt\n\t}\n}", `idempotency.store: "bolt" is not one of memory, disk, redis, postgres`, 3},
		{"bad fail_mode", "replayguard {\n\tfail_mode ajar\n}", `fail_mode: "ajar" is not one of closed, open`, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := unmarshal(t, tt.input)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			if tt.line > 0 {
				assert.Contains(t, err.Error(), "Testfile:"+strconv.Itoa(tt.line), "the error names the file and line")
			}
		})
	}
}

// TestAdaptCaddyfile runs the directive through Caddy's Caddyfile adapter:
// without an order directive it lands before basic_auth, after rewrites,
// and the JSON it produces uses the configuration model's field names.
func TestAdaptCaddyfile(t *testing.T) {
	adapter := caddyconfig.GetAdapter("caddyfile")
	require.NotNil(t, adapter)
	out, warnings, err := adapter.Adapt([]byte(`:8080 {
	reverse_proxy 127.0.0.1:9000
	basic_auth /admin/* {
		admin $2a$14$Zkx19XLiW6VYouLHR5NmfOFU0z2GTNmpkT/5qqR7hx4IjWJPDhjvG
	}
	replayguard /api/* {
		key client-a {env.CLIENT_A_SECRET}
		timestamp {
			tolerance 2m
		}
		idempotency {
			methods POST
		}
	}
	uri strip_prefix /api
}
`), map[string]any{"filename": "Caddyfile"})
	require.NoError(t, err)
	require.Empty(t, warnings)
	var doc any
	require.NoError(t, json.Unmarshal(out, &doc))
	var order []string
	var rg map[string]any
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if name, ok := v["handler"].(string); ok && name != "subroute" {
				order = append(order, name)
				if name == "replayguard" {
					rg = v
				}
			}
			keys := slices.Sorted(maps.Keys(v))
			for _, k := range keys {
				walk(v[k])
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(doc)
	assert.Equal(t, []string{"rewrite", "replayguard", "authentication", "reverse_proxy"}, order)
	require.NotNil(t, rg)
	assert.Equal(t, []any{map[string]any{"id": "client-a", "secrets": []any{"{env.CLIENT_A_SECRET}"}}}, rg["keys"])
	assert.Equal(t, map[string]any{"tolerance": "2m0s"}, rg["timestamp"])
	assert.Equal(t, map[string]any{"methods": []any{"POST"}}, rg["idempotency"])

	out, _, err = adapter.Adapt([]byte(`:8080 {
	replayguard {
		key client-a {env.CLIENT_A_SECRET}
		nonce {
			store disk
		}
		idempotency {
			store disk
		}
		disk {
			path /var/lib/caddy/rg
			fsync false
			lock_timeout 3s
		}
	}
}
`), map[string]any{"filename": "Caddyfile"})
	require.NoError(t, err)
	doc, rg = nil, nil
	require.NoError(t, json.Unmarshal(out, &doc))
	walk(doc)
	require.NotNil(t, rg)
	assert.Equal(t, map[string]any{"store": "disk"}, rg["nonce"])
	assert.Equal(t, map[string]any{"store": "disk"}, rg["idempotency"])
	assert.Equal(t, map[string]any{"path": "/var/lib/caddy/rg", "fsync": false, "lock_timeout": "3s"}, rg["disk"])
	delete(rg, "handler")
	b, err := json.Marshal(rg)
	require.NoError(t, err)
	var h Handler
	require.NoError(t, caddy.StrictUnmarshalJSON(b, &h), "the disk section is a field of the handler")
	assert.Equal(t, "/var/lib/caddy/rg", h.Disk.Path)

	_, _, err = adapter.Adapt([]byte(":8080 {\n\treplayguard {\n\t\tkey a s\n\t\tnonce {\n\t\t\tmode fuzzy\n\t\t}\n\t}\n}"), map[string]any{"filename": "Caddyfile"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `nonce.mode: "fuzzy" is not one of exact, bloom`)
	assert.Contains(t, err.Error(), "Caddyfile:5")
}

// TestJSONFieldsAreTheYAMLFields checks that the module's JSON is the
// configuration model: every field's JSON name is its YAML name, and a YAML
// configuration marshalled to JSON decodes, strictly, into the handler.
func TestJSONFieldsAreTheYAMLFields(t *testing.T) {
	var check func(rt reflect.Type)
	check = func(rt reflect.Type) {
		for i := range rt.NumField() {
			f := rt.Field(i)
			js, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			assert.Equal(t, f.Tag.Get("yaml"), js, "%s.%s", rt.Name(), f.Name)
			ft := f.Type
			for ft.Kind() == reflect.Slice || ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft.PkgPath() == rt.PkgPath() {
				check(ft)
			}
		}
	}
	check(reflect.TypeFor[replayguard.Config]())

	cfg, err := config.Parse([]byte(`
scheme: hmac
keys:
  - id: client-a
    secrets: ["a-secret-0123456789", "base64:c2VjcmV0LTAxMjM0NTY3ODk="]
timestamp: {tolerance: 2m, future_skew: 1m}
nonce: {store: memory, mode: bloom, capacity: 1000, false_positive_rate: 1e-6}
idempotency: {methods: [POST, PUT], ttl: 1h, derive_key: fingerprint}
fail_mode: open
`), func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	b, err := json.Marshal(cfg.Config)
	require.NoError(t, err)
	var h Handler
	require.NoError(t, caddy.StrictUnmarshalJSON(b, &h))
	assert.Equal(t, cfg.Config, h.Config)
}

func TestMarshalJSONLeavesOutEmptySections(t *testing.T) {
	h := Handler{Config: testConfig()}
	h.Timestamp.Tolerance = dur(2 * time.Minute)
	b, err := json.Marshal(h)
	require.NoError(t, err)
	assert.JSONEq(t, `{"keys":[{"id":"client-a","secrets":["`+testSecret+`"]}],"timestamp":{"tolerance":"2m0s"}}`, string(b))
	var back Handler
	require.NoError(t, caddy.StrictUnmarshalJSON(b, &back))
	assert.Equal(t, h.Config, back.Config)
}
