package replayguard_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/config"
	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/jwtsig"
)

const (
	jwtSecret   = "jwt-secret-0123456789abcdef-0123"
	jwtIssuer   = "https://issuer.example"
	jwtAudience = "https://api.example.com"
)

// jwtFixture is a gateway configured with the jwt scheme from YAML: an
// HMAC key, an Ed25519 key from a PEM file, an ES256 key from a JWK and an
// RSA key from a PEM file, and the key material that signs for each.
type jwtFixture struct {
	cfg  replayguard.Config
	ed   ed25519.PrivateKey
	es   *ecdsa.PrivateKey
	rsa  *rsa.PrivateKey
	rsaP []byte // the RSA public key's PEM
}

func newJWTFixture(t *testing.T, extra string) *jwtFixture {
	t.Helper()
	f := &jwtFixture{}
	var err error
	_, f.ed, err = ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	f.es, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	f.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	dir := t.TempDir()
	edPEM := writePEM(t, dir, "ed.pem", f.ed.Public())
	f.rsaP, err = os.ReadFile(writePEM(t, dir, "rsa.pem", &f.rsa.PublicKey))
	require.NoError(t, err)
	jwk, err := signature.PublicJWK(&f.es.PublicKey)
	require.NoError(t, err)
	yml := fmt.Sprintf(`
scheme: jwt
keys:
  - id: hs
    secrets: [%q]
  - id: ed
    algorithm: EdDSA
    public_key_file: %s
  - id: es
    jwk: {kty: EC, crv: P-256, x: %q, y: %q}
  - id: rs
    algorithm: RS256
    public_key_file: %s
jwt:
  issuer: %s
  audience: %s
  leeway: 30s
%s`, jwtSecret, edPEM, jwk["x"], jwk["y"], filepath.Join(dir, "rsa.pem"), jwtIssuer, jwtAudience, extra)
	file, err := config.Parse([]byte(yml), func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	f.cfg = file.Config
	// The binary's file defaults to disk stores; these tests run the
	// library's Guard on its memory ones.
	f.cfg.Nonce.Store, f.cfg.Idempotency.Store = replayguard.StoreMemory, replayguard.StoreMemory
	return f
}

// newJWTGuard builds a Guard on the real clock: the jwt scheme built from
// configuration checks exp and nbf against time.Now.
func newJWTGuard(t *testing.T, cfg replayguard.Config) *replayguard.Guard {
	t.Helper()
	g, err := replayguard.New(cfg)
	require.NoError(t, err)
	return g
}

func jwtJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func writePEM(t *testing.T, dir, name string, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600))
	return p
}

func (f *jwtFixture) signer(kid string, at time.Time) *jwtsig.Signer {
	s := &jwtsig.Signer{KeyID: kid, Issuer: jwtIssuer, Audience: jwtAudience, Subject: "user-" + kid, Now: func() time.Time { return at }}
	switch kid {
	case "hs":
		s.Key = []byte(jwtSecret)
	case "ed":
		s.Key = f.ed
	case "es":
		s.Key = f.es
	case "rs":
		s.Key, s.Algorithm = f.rsa, "RS256"
	}
	return s
}

// jwtHTTPRequest is a POST as a server receives it, signed by s.
func jwtHTTPRequest(t *testing.T, s signature.Signer, method, target string, body []byte) *http.Request {
	t.Helper()
	r := httptest.NewRequest(method, "http://api.example.com"+target, bytes.NewReader(body))
	r.Header.Set("Idempotency-Key", uuid.NewString())
	require.NoError(t, s.Sign(r, body))
	return r
}

// rawToken mints a token with arbitrary claims and header for kid.
func (f *jwtFixture) rawToken(t *testing.T, kid string, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	var (
		m   jwt.SigningMethod
		key any
	)
	switch kid {
	case "hs":
		m, key = jwt.SigningMethodHS256, []byte(jwtSecret)
	case "es":
		m, key = jwt.SigningMethodES256, f.es
	case "ed":
		m, key = jwt.SigningMethodEdDSA, f.ed
	}
	tok := jwt.NewWithClaims(m, claims)
	tok.Header["kid"] = kid
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
			continue
		}
		tok.Header[k] = v
	}
	out, err := tok.SignedString(key)
	require.NoError(t, err)
	return out
}

func boundClaims(r *http.Request, body []byte, at time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"jti": uuid.NewString(), "iat": at.Unix(), "exp": at.Add(5 * time.Minute).Unix(),
		"iss": jwtIssuer, "aud": jwtAudience, "sub": "u",
		"htm": r.Method, "htu": "http://api.example.com" + r.URL.Path, "bsh": jwtsig.BodyHash(body),
	}
}

func TestJWTSchemeFromConfig(t *testing.T) {
	f := newJWTFixture(t, "")
	g := newJWTGuard(t, f.cfg)
	now := time.Now()
	for _, kid := range []string{"hs", "ed", "es", "rs"} {
		t.Run(kid, func(t *testing.T) {
			body := []byte(`{"amount":100}`)
			r := jwtHTTPRequest(t, f.signer(kid, now), http.MethodPost, "/v1/charges?currency=eur", body)
			v, err := g.Verify(context.Background(), signature.FromHTTP(r, body))
			require.NoError(t, err)
			assert.Equal(t, kid, v.KeyID)
			assert.Equal(t, "user-"+kid, v.Subject)
		})
	}
}

// TestJWTProblemCodes checks every documented jwt rejection, through the
// Guard, by its problem code (docs/configuration.md, the error table).
func TestJWTProblemCodes(t *testing.T) {
	f := newJWTFixture(t, "")
	g := newJWTGuard(t, f.cfg)
	now := time.Now()
	body := []byte(`{"amount":100}`)
	build := func(t *testing.T, method, target string, edit func(jwt.MapClaims), header map[string]any) *http.Request {
		r := httptest.NewRequest(method, "http://api.example.com"+target, bytes.NewReader(body))
		cl := boundClaims(r, body, now)
		if edit != nil {
			edit(cl)
		}
		r.Header.Set("Authorization", "Bearer "+f.rawToken(t, "es", cl, header))
		return r
	}
	replayed := build(t, http.MethodPost, "/v1/charges", nil, nil)
	_, err := g.Verify(context.Background(), signature.FromHTTP(replayed, body))
	require.NoError(t, err)

	tests := []struct {
		name string
		req  func(t *testing.T) *http.Request
		code string
	}{
		{"replayed jti", func(*testing.T) *http.Request { return replayed }, "nonce_replayed"},
		{"alg none", func(t *testing.T) *http.Request {
			r := build(t, http.MethodPost, "/v1/charges", nil, nil)
			tok := jwt.NewWithClaims(jwt.SigningMethodNone, boundClaims(r, body, now))
			tok.Header["kid"] = "es"
			s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
			require.NoError(t, err)
			r.Header.Set("Authorization", "Bearer "+s)
			return r
		}, "signature_invalid"},
		{"HS256 signed with the RSA public key", func(t *testing.T) *http.Request {
			r := build(t, http.MethodPost, "/v1/charges", nil, nil)
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, boundClaims(r, body, now))
			tok.Header["kid"] = "rs"
			s, err := tok.SignedString(f.rsaP)
			require.NoError(t, err)
			r.Header.Set("Authorization", "Bearer "+s)
			return r
		}, "signature_invalid"},
		{"expired", func(t *testing.T) *http.Request {
			return build(t, http.MethodPost, "/v1/charges", func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() }, nil)
		}, "timestamp_expired"},
		{"not yet valid", func(t *testing.T) *http.Request {
			return build(t, http.MethodPost, "/v1/charges", func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() }, nil)
		}, "timestamp_in_future"},
		{"iat outside the window", func(t *testing.T) *http.Request {
			return build(t, http.MethodPost, "/v1/charges", func(c jwt.MapClaims) { c["iat"] = now.Add(-10 * time.Minute).Unix() }, nil)
		}, "timestamp_expired"},
		{"iat ahead of the window", func(t *testing.T) *http.Request {
			return build(t, http.MethodPost, "/v1/charges", func(c jwt.MapClaims) { c["iat"] = now.Add(10 * time.Minute).Unix() }, nil)
		}, "timestamp_in_future"},
		{"wrong aud", func(t *testing.T) *http.Request {
			return build(t, http.MethodPost, "/v1/charges", func(c jwt.MapClaims) { c["aud"] = "https://elsewhere.example" }, nil)
		}, "signature_invalid"},
		{"wrong iss", func(t *testing.T) *http.Request {
			return build(t, http.MethodPost, "/v1/charges", func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }, nil)
		}, "signature_invalid"},
		{"missing iss", func(t *testing.T) *http.Request {
			return build(t, http.MethodPost, "/v1/charges", func(c jwt.MapClaims) { delete(c, "iss") }, nil)
		}, "signature_missing"},
		{"missing jti", func(t *testing.T) *http.Request {
			return build(t, http.MethodPost, "/v1/charges", func(c jwt.MapClaims) { delete(c, "jti") }, nil)
		}, "nonce_missing"},
		{"jti too long", func(t *testing.T) *http.Request {
			return build(t, http.MethodPost, "/v1/charges", func(c jwt.MapClaims) { c["jti"] = strings.Repeat("x", 300) }, nil)
		}, "nonce_malformed"},
		{"missing iat", func(t *testing.T) *http.Request {
			return build(t, http.MethodPost, "/v1/charges", func(c jwt.MapClaims) { delete(c, "iat") }, nil)
		}, "timestamp_missing"},
		{"missing kid", func(t *testing.T) *http.Request {
			return build(t, http.MethodPost, "/v1/charges", nil, map[string]any{"kid": nil})
		}, "signature_missing"},
		{"unknown kid", func(t *testing.T) *http.Request {
			return build(t, http.MethodPost, "/v1/charges", nil, map[string]any{"kid": "mallory"})
		}, "key_unknown"},
		{"missing binding claim", func(t *testing.T) *http.Request {
			return build(t, http.MethodPost, "/v1/charges", func(c jwt.MapClaims) { delete(c, "bsh") }, nil)
		}, "signature_missing"},
		{"binding mismatch", func(t *testing.T) *http.Request {
			return build(t, http.MethodPost, "/v1/charges", func(c jwt.MapClaims) { c["htm"] = "GET" }, nil)
		}, "signature_invalid"},
		{"bad JWT", func(t *testing.T) *http.Request {
			r := build(t, http.MethodPost, "/v1/charges", nil, nil)
			r.Header.Set("Authorization", "Bearer not-a-jwt")
			return r
		}, "signature_malformed"},
		{"no token", func(t *testing.T) *http.Request {
			r := build(t, http.MethodPost, "/v1/charges", nil, nil)
			r.Header.Del("Authorization")
			return r
		}, "signature_missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := g.Verify(context.Background(), signature.FromHTTP(tt.req(t), body))
			require.Error(t, err)
			p := replayguard.ProblemFor(err)
			assert.Equal(t, tt.code, p.Code, err.Error())
			assert.Equal(t, http.StatusUnauthorized, p.Status)
		})
	}
}

// TestJWTMiddlewareEndToEnd runs tokens through Guard.Middleware: a valid
// one reaches the next handler once, its replay and the same token lifted
// onto another method, path or body are refused.
func TestJWTMiddlewareEndToEnd(t *testing.T) {
	f := newJWTFixture(t, "")
	up := &upstream{}
	g := newJWTGuard(t, f.cfg)
	srv := httptest.NewServer(g.Middleware(up))
	defer srv.Close()
	send := func(t *testing.T, r *http.Request) *http.Response {
		t.Helper()
		out, err := http.NewRequest(r.Method, srv.URL+r.URL.RequestURI(), bytes.NewReader(readAll(t, r)))
		require.NoError(t, err)
		out.Host = "api.example.com"
		out.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(out)
		require.NoError(t, err)
		t.Cleanup(func() { _ = resp.Body.Close() })
		return resp
	}
	body := []byte(`{"amount":100}`)
	sg := f.signer("ed", time.Now())
	orig := jwtHTTPRequest(t, sg, http.MethodPost, "/v1/charges?currency=eur", body)

	resp := send(t, orig)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.EqualValues(t, 1, up.hits.Load())
	up.mu.Lock()
	assert.Equal(t, body, up.last)
	assert.Equal(t, "user-ed", up.lastV.Subject)
	up.mu.Unlock()

	tests := []struct {
		name   string
		mutate func(r *http.Request) *http.Request
		code   string
	}{
		{"replayed as is", func(r *http.Request) *http.Request { return r }, "nonce_replayed"},
		{"other method", func(r *http.Request) *http.Request {
			return relift(r, http.MethodPut, r.URL.RequestURI(), body)
		}, "signature_invalid"},
		{"other path", func(r *http.Request) *http.Request {
			return relift(r, r.Method, "/v1/refunds?currency=eur", body)
		}, "signature_invalid"},
		{"other body", func(r *http.Request) *http.Request {
			return relift(r, r.Method, r.URL.RequestURI(), []byte(`{"amount":999}`))
		}, "signature_invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := send(t, tt.mutate(jwtHTTPRequestFrom(orig, body)))
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
			assert.Equal(t, tt.code, decodeResponseProblem(t, resp).Code)
		})
	}
	assert.EqualValues(t, 1, up.hits.Load(), "no refused request reaches the upstream")
}

// jwtHTTPRequestFrom copies r with its body.
func jwtHTTPRequestFrom(r *http.Request, body []byte) *http.Request {
	return relift(r, r.Method, r.URL.RequestURI(), body)
}

// relift builds a request carrying r's headers (its token) onto another
// method, target or body.
func relift(r *http.Request, method, target string, body []byte) *http.Request {
	out := httptest.NewRequest(method, "http://api.example.com"+target, bytes.NewReader(body))
	out.Header = r.Header.Clone()
	return out
}

func readAll(t *testing.T, r *http.Request) []byte {
	t.Helper()
	if r.Body == nil {
		return nil
	}
	var b bytes.Buffer
	_, err := b.ReadFrom(r.Body)
	require.NoError(t, err)
	return b.Bytes()
}

func decodeResponseProblem(t *testing.T, resp *http.Response) replayguard.Problem {
	t.Helper()
	assert.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
	var p replayguard.Problem
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&p))
	assert.Equal(t, resp.StatusCode, p.Status)
	return p
}

// TestJWTDPoPThroughGuard verifies DPoP proofs through the Guard: the
// proof's jti goes to the replay store scoped by the token's kid, and
// rejections carry their WWW-Authenticate challenge.
func TestJWTDPoPThroughGuard(t *testing.T) {
	f := newJWTFixture(t, "  dpop: true\n")
	g := newJWTGuard(t, f.cfg)
	client, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	sg := &jwtsig.DPoPSigner{Key: client}
	jkt, err := sg.Thumbprint()
	require.NoError(t, err)
	now := time.Now()
	sg.AccessToken = f.rawToken(t, "es", jwt.MapClaims{
		"iss": jwtIssuer, "aud": jwtAudience, "sub": "alice", "exp": now.Add(time.Hour).Unix(), "cnf": map[string]any{"jkt": jkt},
	}, nil)
	body := []byte(`{"amount":1}`)
	r := jwtHTTPRequest(t, sg, http.MethodPost, "/v1/charges", body)
	v, err := g.Verify(context.Background(), signature.FromHTTP(r, body))
	require.NoError(t, err)
	assert.Equal(t, "alice", v.Subject)
	assert.Equal(t, "es", v.KeyID)

	_, err = g.Verify(context.Background(), signature.FromHTTP(r, body))
	assert.Equal(t, "nonce_replayed", replayguard.ProblemFor(err).Code, "a proof is used once")

	fresh := jwtHTTPRequest(t, sg, http.MethodPost, "/v1/charges", body)
	_, err = g.Verify(context.Background(), signature.FromHTTP(fresh, []byte("other")))
	assert.Equal(t, "signature_invalid", replayguard.ProblemFor(err).Code)
	assert.True(t, strings.HasPrefix(signature.WWWAuthenticate(err), `DPoP error="invalid_dpop_proof"`), signature.WWWAuthenticate(err))

	fresh = jwtHTTPRequest(t, sg, http.MethodPost, "/v1/charges", body)
	fresh.Header.Set("Authorization", "Bearer "+sg.AccessToken)
	_, err = g.Verify(context.Background(), signature.FromHTTP(fresh, body))
	assert.Equal(t, "signature_invalid", replayguard.ProblemFor(err).Code, "a DPoP-bound token is no bearer token")
}

func TestJWTConfigValidationNamesFields(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	require.NoError(t, os.WriteFile(bad, []byte("not a key"), 0o600))
	cfg := replayguard.Config{
		Scheme: "jwt",
		Keys: []replayguard.KeyConfig{
			{ID: "short", Secrets: []string{"short"}},
			{ID: "alg", Algorithm: "ES256", Secrets: []string{jwtSecret}},
			{ID: "file", Algorithm: "EdDSA", PublicKeyFile: filepath.Join(dir, "missing.pem")},
			{ID: "badpem", Algorithm: "EdDSA", PublicKeyFile: bad},
			{ID: "jwk", JWK: map[string]any{"kty": "EC", "crv": "P-999"}},
			{ID: "none"},
			{ID: "both", Secrets: []string{jwtSecret}, PublicKeyFile: bad},
			{ID: "unknown-alg", Algorithm: "none", Secrets: []string{jwtSecret}},
			{ID: "kid", JWK: map[string]any{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "other"}},
		},
		JWT: replayguard.JWTConfig{
			Header: "Bad Header", Prefix: "Be arer", JWKSURL: "ftp://keys.example",
			Leeway: replayguard.Duration(-time.Second), Bind: []string{"htm", "path", "htm"},
		},
	}.WithDefaults()
	err := cfg.Validate()
	require.Error(t, err)
	for _, field := range []string{
		"keys[0].secrets[0]", "keys[1].algorithm", "keys[2].public_key_file", "keys[3].public_key_file",
		"keys[4].jwk", "keys[5]:", "keys[6]:", "keys[7].algorithm", "keys[8].jwk",
		"jwt.header", "jwt.prefix", "jwt.jwks_url", "jwt.leeway", "jwt.bind[1]", "jwt.bind[2]",
	} {
		assert.Contains(t, err.Error(), "config: "+field, field)
	}
	assert.NotContains(t, err.Error(), jwtSecret, "secrets stay out of messages")
}

func TestJWTConfigDPoPNeedsPrefix(t *testing.T) {
	cfg := replayguard.Config{
		Scheme: "jwt", Keys: []replayguard.KeyConfig{{ID: "hs", Secrets: []string{jwtSecret}}},
		JWT: replayguard.JWTConfig{Header: "X-Token", DPoP: true},
	}.WithDefaults()
	err := cfg.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "config: jwt.dpop")
}

func TestJWTConfigBindAndHeader(t *testing.T) {
	f := newJWTFixture(t, "  bind: []\n  header: X-Token\n")
	g := newJWTGuard(t, f.cfg)
	r := httptest.NewRequest(http.MethodGet, "http://api.example.com/x", nil)
	r.Header.Set("X-Token", f.rawToken(t, "hs", jwt.MapClaims{
		"jti": uuid.NewString(), "iat": time.Now().Unix(), "iss": jwtIssuer, "aud": jwtAudience,
	}, nil))
	v, err := g.Verify(context.Background(), signature.FromHTTP(r, nil))
	require.NoError(t, err, "bind: [] turns binding off; another header takes the bare token")
	assert.Equal(t, "hs", v.KeyID)
}

func TestJWTConfigWithJWKS(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	jwk, err := signature.PublicJWK(&k.PublicKey)
	require.NoError(t, err)
	jwk["kid"], jwk["alg"] = "idp-1", "ES256"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"keys":[%s]}`, jwtJSON(t, jwk))
	}))
	defer srv.Close()
	f := newJWTFixture(t, "  jwks_url: "+srv.URL+"\n")
	g := newJWTGuard(t, f.cfg)
	body := []byte(`{}`)
	r := jwtHTTPRequest(t, &jwtsig.Signer{KeyID: "idp-1", Key: k, Issuer: jwtIssuer, Audience: jwtAudience}, http.MethodPost, "/v1/x", body)
	v, err := g.Verify(context.Background(), signature.FromHTTP(r, body))
	require.NoError(t, err)
	assert.Equal(t, "jwks", v.KeyID, "the key set is one entry: a token's kid is never the identity")
}
