package replayguard_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/httpsig"
)

// rfcVectorMsg is an entry of signature/httpsig/testdata/rfc9421/vectors.json.
type rfcVectorMsg struct {
	Source         string      `json:"source"`
	Key            string      `json:"key"`
	Label          string      `json:"label"`
	Method         string      `json:"method"`
	Target         string      `json:"target"`
	Host           string      `json:"host"`
	Status         int         `json:"status"`
	Headers        [][2]string `json:"headers"`
	Body           string      `json:"body"`
	SignatureInput string      `json:"signature_input"`
	Signature      string      `json:"signature"`
}

// rfcAppendixKeys configures the RFC 9421 Appendix B.1 keys the ways an
// operator would: PEM files, a JWK and a base64 secret.
func rfcAppendixKeys(t *testing.T) []replayguard.KeyConfig {
	t.Helper()
	dir := t.TempDir()
	file := func(name string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, mustRead(t, "signature/httpsig/testdata/rfc9421/"+name), 0o600))
		return p
	}
	var eccJWK map[string]any
	require.NoError(t, json.Unmarshal(mustRead(t, "signature/httpsig/testdata/rfc9421/test-key-ecc-p256.jwk.json"), &eccJWK))
	delete(eccJWK, "d") // configuration holds the public key only
	return []replayguard.KeyConfig{
		{ID: "test-key-rsa-pss", Algorithm: "rsa-pss-sha512", PublicKeyFile: file("test-key-rsa-pss.pub.pem")},
		{ID: "test-key-rsa", Algorithm: "rsa-v1_5-sha256", PublicKeyFile: file("test-key-rsa.pub.pem")},
		{ID: "test-key-ecc-p256", Algorithm: "ecdsa-p256-sha256", JWK: eccJWK},
		{ID: "test-key-ed25519", Algorithm: "ed25519", PublicKeyFile: file("test-key-ed25519.pub.pem")},
		{ID: "test-shared-secret", Secrets: []string{"base64:" + string(mustRead(t, "signature/httpsig/testdata/rfc9421/test-shared-secret.b64"))}},
	}
}

// RFC 9421 Appendix B.2.1, B.2.2, B.2.3, B.2.5 and B.2.6 (and the signed
// requests of Appendix B.4 and Sections 3.2 and 4.3) pass the whole
// pipeline with a fixed clock at their created time, once each: the second
// presentation is a replay.
func TestRFC9421AppendixBThroughGuard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("signature", "httpsig", "testdata", "rfc9421", "vectors.json"))
	require.NoError(t, err)
	var vs []rfcVectorMsg
	require.NoError(t, json.Unmarshal(b, &vs))
	for _, v := range vs {
		if v.Status != 0 || v.Label == "proxy_sig" {
			// B.2.4 signs a response; the proxy's signature of Section 4.3
			// carries an expires time checked against the scheme's own
			// clock (httpsig.WithClock), verified in package
			// signature.
			continue
		}
		t.Run(v.Source+" "+v.Label, func(t *testing.T) {
			g, err := replayguard.New(replayguard.Config{
				Scheme:  "rfc9421",
				Keys:    rfcAppendixKeys(t),
				RFC9421: replayguard.RFC9421Config{RequiredComponents: []string{}},
			}, replayguard.WithClock(func() time.Time { return time.Unix(1618884480, 0) }))
			require.NoError(t, err)
			h := http.Header{}
			for _, kv := range v.Headers {
				h.Add(kv[0], kv[1])
			}
			h.Set("Signature-Input", v.SignatureInput)
			h.Set("Signature", v.Signature)
			r := &signature.Request{Method: v.Method, Scheme: "https", Host: v.Host, Target: v.Target, Header: h, Body: []byte(v.Body)}
			got, err := g.Verify(context.Background(), r)
			require.NoError(t, err)
			assert.Equal(t, v.Key, got.KeyID)
			_, err = g.Verify(context.Background(), r)
			assert.Equal(t, "nonce_replayed", replayguard.ProblemFor(err).Code)
		})
	}
}

// The created time is the timestamp of the window: the Appendix B.2.5
// request is expired under the default window a day later.
func TestRFC9421WindowOnCreated(t *testing.T) {
	g, err := replayguard.New(replayguard.Config{Scheme: "rfc9421", Keys: rfcAppendixKeys(t), RFC9421: replayguard.RFC9421Config{RequiredComponents: []string{}}},
		replayguard.WithClock(func() time.Time { return time.Unix(1618884473+86400, 0) }))
	require.NoError(t, err)
	h := http.Header{}
	h.Set("Date", "Tue, 20 Apr 2021 02:07:55 GMT")
	h.Set("Content-Type", "application/json")
	h.Set("Signature-Input", `sig-b25=("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"`)
	h.Set("Signature", `sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:`)
	_, err = g.Verify(context.Background(), &signature.Request{Method: "POST", Scheme: "https", Host: "example.com", Target: "/foo?param=Value&Pet=dog", Header: h})
	assert.Equal(t, "timestamp_expired", replayguard.ProblemFor(err).Code)
}

func rfcMiddlewareRequest(t *testing.T, s signature.Signer, body, idemKey string) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "https://api.example.com/v1/charges?currency=eur", strings.NewReader(body))
	if idemKey != "" {
		r.Header.Set("Idempotency-Key", idemKey)
	}
	require.NoError(t, s.Sign(r, []byte(body)))
	return r
}

// Signed with RFC9421Signer (hmac-sha256 and ed25519) under the default
// required components: a retried operation (new signature, same
// Idempotency-Key) gets the stored response, a byte-for-byte replay is
// rejected, and every broken part of a signature has its own code.
func TestRFC9421ThroughMiddleware(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	jwk := map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64url(pub)}
	g, err := replayguard.New(replayguard.Config{Scheme: "rfc9421", Keys: []replayguard.KeyConfig{
		{ID: "client-hmac", Secrets: []string{"client-hmac-secret"}},
		{ID: "client-ed", Algorithm: "EdDSA", JWK: jwk},
	}}, replayguard.WithClock(func() time.Time { return whNow }))
	require.NoError(t, err)
	up := &whUpstream{}
	h := g.Middleware(up)
	clock := func() time.Time { return whNow.Add(-5 * time.Second) }
	signers := map[string]*httpsig.Signer{
		"client-hmac": {KeyID: "client-hmac", Secret: []byte("client-hmac-secret"), Now: clock},
		"client-ed":   {KeyID: "client-ed", PrivateKey: priv, Now: clock},
	}
	for id, s := range signers {
		t.Run(id, func(t *testing.T) {
			before := up.hits.Load()
			body := `{"amount":100}`
			first := rfcMiddlewareRequest(t, s, body, "op-"+id)
			replay := withBodyString(first, body)

			rec := whServe(h, first)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			assert.JSONEq(t, `{"delivery":`+itoa(before+1)+`,"principal":"`+id+`"}`, rec.Body.String())

			rec = whServe(h, rfcMiddlewareRequest(t, s, body, "op-"+id))
			require.Equal(t, http.StatusOK, rec.Code)
			assert.Equal(t, "true", rec.Header().Get("Idempotent-Replayed"))

			rec = whServe(h, replay)
			require.Equal(t, http.StatusUnauthorized, rec.Code)
			assert.Equal(t, "nonce_replayed", whCode(t, rec))
			assert.Equal(t, before+1, up.hits.Load())

			tampered := withBodyString(rfcMiddlewareRequest(t, s, body, "op-2-"+id), `{"amount":999}`)
			assert.Equal(t, "signature_invalid", whCode(t, whServe(h, tampered)))

			noDigest := rfcMiddlewareRequest(t, &httpsig.Signer{KeyID: s.KeyID, Secret: s.Secret, PrivateKey: s.PrivateKey, Now: clock,
				Components: []string{"@method", "@target-uri"}}, body, "op-3-"+id)
			assert.Equal(t, "signature_missing", whCode(t, whServe(h, noDigest)))

			old := rfcMiddlewareRequest(t, &httpsig.Signer{KeyID: s.KeyID, Secret: s.Secret, PrivateKey: s.PrivateKey,
				Now: func() time.Time { return whNow.Add(-time.Hour) }}, body, "op-4-"+id)
			assert.Equal(t, "timestamp_expired", whCode(t, whServe(h, old)))
		})
	}
	unknown := rfcMiddlewareRequest(t, &httpsig.Signer{KeyID: "nobody", Secret: []byte("x")}, "{}", "op-x")
	assert.Equal(t, "key_unknown", whCode(t, whServe(h, unknown)))
	bad := httptest.NewRequest(http.MethodGet, "https://api.example.com/", nil)
	bad.Header.Set("Signature-Input", `sig1=("@method"`)
	bad.Header.Set("Signature", `sig1=:YWJj:`)
	assert.Equal(t, "signature_malformed", whCode(t, whServe(h, bad)))
	none := httptest.NewRequest(http.MethodGet, "https://api.example.com/", nil)
	assert.Equal(t, "signature_missing", whCode(t, whServe(h, none)))
}

// Signatures produced by Transport with an RFC9421Signer pass a real
// server, retries included.
func TestRFC9421TransportEndToEnd(t *testing.T) {
	g, err := replayguard.New(replayguard.Config{Scheme: "rfc9421", Keys: []replayguard.KeyConfig{{ID: "c", Secrets: []string{"s3cret-0123456789"}}}})
	require.NoError(t, err)
	up := &whUpstream{}
	srv := httptest.NewServer(g.Middleware(up))
	defer srv.Close()
	client := &http.Client{Transport: &signature.Transport{Signer: &httpsig.Signer{KeyID: "c", Secret: []byte("s3cret-0123456789")}}}
	for i := 0; i < 2; i++ {
		resp, err := client.Post(srv.URL+"/v1/things?x=1", "application/json", strings.NewReader(`{"n":1}`))
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	resp, err := client.Get(srv.URL + "/v1/things")
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, int64(3), up.hits.Load())
}

func TestRFC9421ConfigErrors(t *testing.T) {
	dir := t.TempDir()
	edPEM := filepath.Join(dir, "ed.pem")
	require.NoError(t, os.WriteFile(edPEM, mustRead(t, "signature/httpsig/testdata/rfc9421/test-key-ed25519.pub.pem"), 0o600))
	rsaPEM := filepath.Join(dir, "rsa.pem")
	require.NoError(t, os.WriteFile(rsaPEM, mustRead(t, "signature/httpsig/testdata/rfc9421/test-key-rsa.pub.pem"), 0o600))
	tests := []struct {
		name  string
		cfg   replayguard.Config
		field string
	}{
		{"unknown component", replayguard.Config{RFC9421: replayguard.RFC9421Config{RequiredComponents: []string{"@nope"}}, Keys: []replayguard.KeyConfig{{ID: "a", Secrets: []string{"s"}}}}, "rfc9421.required_components[0]"},
		{"query-param without name", replayguard.Config{RFC9421: replayguard.RFC9421Config{RequiredComponents: []string{"@method", `"@query-param"`}}, Keys: []replayguard.KeyConfig{{ID: "a", Secrets: []string{"s"}}}}, "rfc9421.required_components[1]"},
		{"unknown algorithm", replayguard.Config{Keys: []replayguard.KeyConfig{{ID: "a", Secrets: []string{"s"}, Algorithm: "md5"}}}, "keys[0].algorithm"},
		{"no secret nor key", replayguard.Config{Keys: []replayguard.KeyConfig{{ID: "a"}}}, "keys[0].secrets"},
		{"asymmetric without key", replayguard.Config{Keys: []replayguard.KeyConfig{{ID: "a", Algorithm: "ed25519", Secrets: []string{"s"}}}}, "keys[0].public_key_file"},
		{"both file and jwk", replayguard.Config{Keys: []replayguard.KeyConfig{{ID: "a", PublicKeyFile: edPEM, JWK: map[string]any{"kty": "OKP"}}}}, "keys[0].jwk"},
		{"bad jwk", replayguard.Config{Keys: []replayguard.KeyConfig{{ID: "a", JWK: map[string]any{"kty": "OKP", "crv": "X448"}}}}, "keys[0].jwk"},
		{"unreadable file", replayguard.Config{Keys: []replayguard.KeyConfig{{ID: "a", PublicKeyFile: filepath.Join(dir, "none.pem")}}}, "keys[0].public_key_file"},
		{"algorithm does not fit", replayguard.Config{Keys: []replayguard.KeyConfig{{ID: "a", Algorithm: "ecdsa-p256-sha256", PublicKeyFile: edPEM}}}, "keys[0].algorithm"},
		{"rsa without algorithm", replayguard.Config{Keys: []replayguard.KeyConfig{{ID: "a", PublicKeyFile: rsaPEM}}}, "keys[0].algorithm"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Scheme = "rfc9421"
			_, err := replayguard.New(tc.cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "config: "+tc.field+":")
		})
	}
}

func b64url(b []byte) string {
	const enc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var out strings.Builder
	for i := 0; i < len(b); i += 3 {
		var n uint32
		k := 0
		for j := 0; j < 3; j++ {
			n <<= 8
			if i+j < len(b) {
				n |= uint32(b[i+j])
				k++
			}
		}
		for j := 0; j <= k; j++ {
			out.WriteByte(enc[n>>(18-6*uint(j))&63])
		}
	}
	return out.String()
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func withBodyString(r *http.Request, body string) *http.Request {
	c := httptest.NewRequest(r.Method, r.URL.String(), strings.NewReader(body))
	c.Header = r.Header.Clone()
	return c
}

// Behind a TLS-terminating proxy the gateway sees plain HTTP while the
// client signed https://…: WithRequestScheme supplies the client's scheme,
// and "" keeps the default taken from the connection.
func TestRequestSchemeBehindATLSProxy(t *testing.T) {
	signer := &httpsig.Signer{KeyID: "c", Secret: []byte("s3cret-0123456789"), Components: []string{"@method", "@target-uri"}}
	signedOverHTTPS := func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "https://api.example.com/v1/things?x=1", nil)
		require.NoError(t, signer.Sign(r, nil))
		r.TLS = nil // the proxy terminated TLS
		return r
	}
	tests := []struct {
		name   string
		opts   []replayguard.Option
		status int
	}{
		{"scheme from the connection", nil, http.StatusUnauthorized},
		{"scheme from the option", []replayguard.Option{replayguard.WithRequestScheme(func(*http.Request) string { return "https" })}, http.StatusOK},
		{"empty keeps the default", []replayguard.Option{replayguard.WithRequestScheme(func(*http.Request) string { return "" })}, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := replayguard.New(replayguard.Config{Scheme: "rfc9421", Keys: []replayguard.KeyConfig{{ID: "c", Secrets: []string{"s3cret-0123456789"}}}}, tt.opts...)
			require.NoError(t, err)
			rec := whServe(g.Middleware(&whUpstream{}), signedOverHTTPS())
			require.Equal(t, tt.status, rec.Code, rec.Body.String())
			if tt.status != http.StatusOK {
				assert.Equal(t, "signature_invalid", whCode(t, rec))
			}
		})
	}
}
