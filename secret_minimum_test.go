package replayguard_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
)

// A secret shorter than 16 bytes after decoding is refused at start, the
// message naming the field; a vendor's secret is rotated at the vendor.
func TestShortSecretsAreRefused(t *testing.T) {
	long := strings.Repeat("k", 16)
	whsec := func(n int) string {
		return "whsec_" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("w", n)))
	}
	tests := []struct {
		name    string
		scheme  string
		secrets []string
		want    string // "" = accepted
		vendor  bool
	}{
		{"hmac 16 bytes", "hmac", []string{long}, "", false},
		{"hmac 9 bytes", "hmac", []string{long, "nine-byte"}, "keys[0].secrets[1]: secret is 9 bytes, at least 16 required", false},
		{"hmac base64 decoded short", "hmac", []string{"base64:" + base64.StdEncoding.EncodeToString([]byte("short-secret"))}, "keys[0].secrets[0]: secret is 12 bytes", false},
		{"hmac base64 decoded 16", "hmac", []string{"base64:" + base64.StdEncoding.EncodeToString([]byte(long))}, "", false},
		{"default scheme", "", []string{"eight-b!"}, "keys[0].secrets[0]: secret is 8 bytes", false},
		{"rfc9421 hmac key", "rfc9421", []string{"short"}, "keys[0].secrets[0]: secret is 5 bytes", false},
		{"rfc9421 hmac key 16", "rfc9421", []string{long}, "", false},
		{"standard-webhooks decoded short", "standard-webhooks", []string{whsec(10)}, "keys[0].secrets[0]: secret is 10 bytes", true},
		{"standard-webhooks decoded 16", "standard-webhooks", []string{whsec(16)}, "", false},
		{"standard-webhooks raw 24 chars decode to 15", "standard-webhooks", []string{whsec(15)}, "secret is 15 bytes", true},
		{"stripe", "stripe", []string{"whsec_short"}, "keys[0].secrets[0]: secret is 11 bytes", true},
		{"github", "github", []string{"hunter2"}, "secret is 7 bytes", true},
		{"slack", "slack", []string{"8f742231b10e"}, "secret is 12 bytes", true},
		{"shopify", "shopify", []string{"tiny"}, "secret is 4 bytes", true},
		{"slack 32 hex", "slack", []string{"8f742231b10e8888abcd99yyyzzz85a5"}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := replayguard.Config{Scheme: tt.scheme, Keys: []replayguard.KeyConfig{{ID: "k", Secrets: tt.secrets}}}
			err := cfg.WithDefaults().Validate()
			if tt.want == "" {
				require.NoError(t, err)
				_, err = replayguard.New(cfg)
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			if tt.vendor {
				assert.Contains(t, err.Error(), "rotate it in the vendor's dashboard")
			} else {
				assert.NotContains(t, err.Error(), "vendor")
			}
			_, err = replayguard.New(cfg)
			require.Error(t, err, "New validates too")
		})
	}
}

// HS256/384/512 keep RFC 7518's longer minimum: the hash's output size.
func TestJWTSecretsKeepTheHashSizeMinimum(t *testing.T) {
	tests := []struct {
		alg  string
		n    int
		want string
	}{
		{"HS256", 31, "at least 32 bytes"},
		{"HS256", 32, ""},
		{"HS384", 47, "at least 48 bytes"},
		{"HS384", 48, ""},
		{"HS512", 63, "at least 64 bytes"},
		{"HS512", 64, ""},
		{"", 20, "at least 32 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.alg, func(t *testing.T) {
			cfg := replayguard.Config{Scheme: "jwt", Keys: []replayguard.KeyConfig{{ID: "k", Algorithm: tt.alg, Secrets: []string{strings.Repeat("s", tt.n)}}}}
			err := cfg.WithDefaults().Validate()
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), "keys[0].secrets[0]")
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}
