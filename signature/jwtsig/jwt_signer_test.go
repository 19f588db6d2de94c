package jwtsig_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/jwtsig"
)

func TestJWTSignerRoundTrip(t *testing.T) {
	s := newJWTScheme(t)
	k := jwtKeys(t)
	tests := []struct {
		name string
		sg   *jwtsig.Signer
	}{
		{"HS256", &jwtsig.Signer{KeyID: "hs", Key: jwtHS}},
		{"ES256", &jwtsig.Signer{KeyID: "es", Key: k.es}},
		{"ES384", &jwtsig.Signer{KeyID: "es384", Key: k.es3}},
		{"EdDSA", &jwtsig.Signer{KeyID: "ed", Key: k.ed}},
		{"RS256", &jwtsig.Signer{KeyID: "rs", Key: k.rsa, Algorithm: "RS256"}},
		{"PS256", &jwtsig.Signer{KeyID: "ps", Key: k.rsa, Algorithm: "PS256"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.sg.Issuer, tt.sg.Audience, tt.sg.Subject, tt.sg.Now = jwtIssuer, jwtAudience, "svc-"+tt.name, jwtFixedClock
			body := []byte(`{"amount":100}`)
			req, err := http.NewRequest(http.MethodPost, "https://API.example.com/v1/charges?currency=eur", nil)
			require.NoError(t, err)
			require.NoError(t, tt.sg.Sign(req, body))
			r := jwtRequest()
			r.Header = req.Header
			v, err := s.Verify(context.Background(), r)
			require.NoError(t, err)
			assert.Equal(t, "svc-"+tt.name, v.Subject)
			assert.Equal(t, tt.sg.KeyID, v.KeyID)
			assert.Equal(t, jwtNow, v.Timestamp)
			assert.Len(t, v.ReplayKey, 36, "a UUID jti")

			claims := decodeClaims(t, strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer "))
			assert.EqualValues(t, jwtNow.Add(jwtsig.DefaultSignerTTL).Unix(), claims["exp"])
			assert.Equal(t, jwtHTU, claims["htu"], "host lowercased, query dropped")
		})
	}
}

// tokenClaims decodes a token's claims without verifying it.
func decodeClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

func TestJWTSignerOptions(t *testing.T) {
	sg := &jwtsig.Signer{
		KeyID: "hs", Key: jwtHS, TTL: -1, Bind: []string{}, Header: "X-Token",
		Now: jwtFixedClock, NewJTI: func() string { return "fixed-jti" },
	}
	req := httptest.NewRequest(http.MethodGet, "http://h/p", nil)
	require.NoError(t, sg.Sign(req, nil))
	tok := req.Header.Get("X-Token")
	require.NotEmpty(t, tok)
	assert.False(t, strings.HasPrefix(tok, "Bearer "), "another header gets no prefix")
	claims := decodeClaims(t, tok)
	assert.Equal(t, map[string]any{"jti": "fixed-jti", "iat": float64(jwtNow.Unix())}, claims)

	k := jwtKeys(t)
	for name, bad := range map[string]*jwtsig.Signer{
		"no key id":        {Key: jwtHS},
		"no key":           {KeyID: "a"},
		"short secret":     {KeyID: "a", Key: []byte("short")},
		"RSA without alg":  {KeyID: "a", Key: k.rsa},
		"EC with EdDSA":    {KeyID: "a", Key: k.es, Algorithm: "EdDSA"},
		"public key":       {KeyID: "a", Key: &k.es.PublicKey},
		"unknown bind":     {KeyID: "a", Key: jwtHS, Bind: []string{"path"}},
		"unsupported type": {KeyID: "a", Key: "secret"},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Error(t, bad.Sign(httptest.NewRequest(http.MethodGet, "http://h/", nil), nil))
		})
	}
	_, err := (&jwtsig.DPoPSigner{}).Thumbprint()
	assert.Error(t, err)
	assert.Error(t, (&jwtsig.DPoPSigner{Key: k.es}).Sign(httptest.NewRequest(http.MethodGet, "http://h/", nil), nil), "no access token")
}

func TestHTU(t *testing.T) {
	tests := []struct {
		url, host, want string
	}{
		{"https://API.Example.com/v1/x?y=1", "", "https://api.example.com/v1/x"},
		{"http://h:8080/a%2Fb?q", "", "http://h:8080/a%2Fb"},
		{"http://h", "", "http://h/"},
		{"http://10.0.0.1/x", "api.example.com", "http://api.example.com/x"},
		{"http://[fe80::1%25eth0]:80/x", "", "http://[fe80::1]:80/x"},
	}
	for _, tt := range tests {
		req, err := http.NewRequest(http.MethodGet, tt.url, nil)
		require.NoError(t, err)
		req.Host = tt.host
		got, err := jwtsig.HTU(req)
		require.NoError(t, err)
		assert.Equal(t, tt.want, got, tt.url)
	}
}

// TestTransportSignsJWTs sends requests through the signing Transport to a
// server verifying them with the jwt scheme: every attempt, retries
// included, carries a token of its own.
func TestTransportSignsJWTs(t *testing.T) {
	k := jwtKeys(t)
	s, err := jwtsig.New([]signature.Key{{ID: "ed", PublicKey: k.ed.Public()}})
	require.NoError(t, err)
	var (
		mu   sync.Mutex
		jtis = map[string]bool{}
		n    int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		v, err := s.Verify(r.Context(), signature.FromHTTP(r, body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if jtis[v.ReplayKey] {
			http.Error(w, "replayed", http.StatusUnauthorized)
			return
		}
		jtis[v.ReplayKey] = true
		n++
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	client := &http.Client{Transport: &signature.Transport{
		Signer:  &jwtsig.Signer{KeyID: "ed", Key: k.ed},
		Backoff: func(int) time.Duration { return time.Millisecond },
	}}
	resp, err := client.Post(srv.URL+"/v1/charges?x=1", "application/json", bytes.NewReader([]byte(`{"amount":1}`)))
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Len(t, jtis, 2, "the retry was signed anew")
}
