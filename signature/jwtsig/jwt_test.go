package jwtsig_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/jwtsig"
	"github.com/replayguard/replayguard/timestamp"
)

func TestJWTVerifiesEveryAlgorithm(t *testing.T) {
	s := newJWTScheme(t)
	for alg, sg := range jwtSigners(t) {
		t.Run(alg, func(t *testing.T) {
			r := jwtRequest()
			cl := jwtClaimsFor(r)
			v, err := s.Verify(context.Background(), withBearer(r, mintJWT(t, sg, cl, nil)))
			require.NoError(t, err)
			assert.Equal(t, signature.Verified{
				KeyID: sg.kid, Subject: "user-1", Timestamp: jwtNow, ReplayKey: cl["jti"].(string),
			}, v)
		})
	}
}

func TestJWTWithoutSubIsTheKeyAlone(t *testing.T) {
	s := newJWTScheme(t)
	r := jwtRequest()
	cl := jwtClaimsFor(r)
	delete(cl, "sub")
	v, err := s.Verify(context.Background(), withBearer(r, mintJWT(t, jwtSigners(t)["ES256"], cl, nil)))
	require.NoError(t, err)
	assert.Equal(t, "es", v.KeyID)
	assert.Empty(t, v.Subject)
	assert.Equal(t, "es", v.Scope())
}

// TestJWTRejections covers every rejection of a bearer token with the
// sentinel its the jwt wire format (docs/wire-format.md) code maps from.
func TestJWTRejections(t *testing.T) {
	s := newJWTScheme(t)
	sg := jwtSigners(t)
	k := jwtKeys(t)
	tests := []struct {
		name string
		// tok returns the Authorization value for r.
		auth func(t *testing.T, r *signature.Request) string
		// mutate changes the request after signing.
		mutate func(r *signature.Request)
		want   error
	}{
		{"alg none", func(t *testing.T, r *signature.Request) string {
			return "Bearer " + mintJWT(t, jwtSigner{"hs", jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType}, jwtClaimsFor(r), nil)
		}, nil, signature.ErrInvalid},
		{"alg none without kid", func(t *testing.T, r *signature.Request) string {
			return "Bearer " + mintJWT(t, jwtSigner{"", jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType}, jwtClaimsFor(r), map[string]any{"kid": nil})
		}, nil, signature.ErrInvalid},
		{"HS256 signed with the RSA public key (key confusion)", func(t *testing.T, r *signature.Request) string {
			return "Bearer " + mintJWT(t, jwtSigner{"rs", jwt.SigningMethodHS256, pemPublicKey(t, &k.rsa.PublicKey)}, jwtClaimsFor(r), nil)
		}, nil, signature.ErrInvalid},
		{"HS256 signed with the DER RSA public key", func(t *testing.T, r *signature.Request) string {
			return "Bearer " + mintJWT(t, jwtSigner{"rs", jwt.SigningMethodHS256, []byte(k.rsa.N.String())}, jwtClaimsFor(r), nil)
		}, nil, signature.ErrInvalid},
		{"RS256 key presented with PS256", func(t *testing.T, r *signature.Request) string {
			return "Bearer " + mintJWT(t, jwtSigner{"rs", jwt.SigningMethodPS256, k.rsa}, jwtClaimsFor(r), nil)
		}, nil, signature.ErrInvalid},
		{"ES256 key presented with ES384", func(t *testing.T, r *signature.Request) string {
			return "Bearer " + mintJWT(t, jwtSigner{"es", jwt.SigningMethodES384, k.es3}, jwtClaimsFor(r), nil)
		}, nil, signature.ErrInvalid},
		{"HMAC key presented with HS512", func(t *testing.T, r *signature.Request) string {
			return "Bearer " + mintJWT(t, jwtSigner{"hs", jwt.SigningMethodHS512, jwtHS}, jwtClaimsFor(r), nil)
		}, nil, signature.ErrInvalid},
		{"signed by another key", func(t *testing.T, r *signature.Request) string {
			return "Bearer " + mintJWT(t, jwtSigner{"es", jwt.SigningMethodES256, otherP256(t)}, jwtClaimsFor(r), nil)
		}, nil, signature.ErrInvalid},
		{"expired", func(t *testing.T, r *signature.Request) string {
			cl := jwtClaimsFor(r)
			cl["exp"] = jwtNow.Add(-31 * time.Second).Unix()
			return "Bearer " + mintJWT(t, sg["ES256"], cl, nil)
		}, nil, timestamp.ErrExpired},
		{"not yet valid", func(t *testing.T, r *signature.Request) string {
			cl := jwtClaimsFor(r)
			cl["nbf"] = jwtNow.Add(31 * time.Second).Unix()
			return "Bearer " + mintJWT(t, sg["ES256"], cl, nil)
		}, nil, timestamp.ErrInFuture},
		{"wrong iss", func(t *testing.T, r *signature.Request) string {
			cl := jwtClaimsFor(r)
			cl["iss"] = "https://evil.example"
			return "Bearer " + mintJWT(t, sg["ES256"], cl, nil)
		}, nil, signature.ErrInvalid},
		{"missing iss", func(t *testing.T, r *signature.Request) string {
			cl := jwtClaimsFor(r)
			delete(cl, "iss")
			return "Bearer " + mintJWT(t, sg["ES256"], cl, nil)
		}, nil, signature.ErrMissing},
		{"wrong aud", func(t *testing.T, r *signature.Request) string {
			cl := jwtClaimsFor(r)
			cl["aud"] = []string{"https://other.example", "x"}
			return "Bearer " + mintJWT(t, sg["ES256"], cl, nil)
		}, nil, signature.ErrInvalid},
		{"missing aud", func(t *testing.T, r *signature.Request) string {
			cl := jwtClaimsFor(r)
			delete(cl, "aud")
			return "Bearer " + mintJWT(t, sg["ES256"], cl, nil)
		}, nil, signature.ErrMissing},
		{"exp not a number", func(t *testing.T, r *signature.Request) string {
			cl := jwtClaimsFor(r)
			cl["exp"] = "tomorrow"
			return "Bearer " + mintJWT(t, sg["ES256"], cl, nil)
		}, nil, signature.ErrMalformed},
		{"missing jti", func(t *testing.T, r *signature.Request) string {
			cl := jwtClaimsFor(r)
			delete(cl, "jti")
			return "Bearer " + mintJWT(t, sg["ES256"], cl, nil)
		}, nil, nonce.ErrMissing},
		{"jti too long", func(t *testing.T, r *signature.Request) string {
			cl := jwtClaimsFor(r)
			cl["jti"] = strings.Repeat("j", jwtsig.MaxJTIBytes+1)
			return "Bearer " + mintJWT(t, sg["ES256"], cl, nil)
		}, nil, nonce.ErrMalformed},
		{"jti not a string", func(t *testing.T, r *signature.Request) string {
			cl := jwtClaimsFor(r)
			cl["jti"] = 42
			return "Bearer " + mintJWT(t, sg["ES256"], cl, nil)
		}, nil, signature.ErrMalformed},
		{"missing iat", func(t *testing.T, r *signature.Request) string {
			cl := jwtClaimsFor(r)
			delete(cl, "iat")
			return "Bearer " + mintJWT(t, sg["ES256"], cl, nil)
		}, nil, timestamp.ErrMissing},
		{"iat not a number", func(t *testing.T, r *signature.Request) string {
			cl := jwtClaimsFor(r)
			cl["iat"] = "now"
			return "Bearer " + mintJWT(t, sg["ES256"], cl, nil)
		}, nil, signature.ErrMalformed},
		{"missing kid", func(t *testing.T, r *signature.Request) string {
			return "Bearer " + mintJWT(t, sg["ES256"], jwtClaimsFor(r), map[string]any{"kid": nil})
		}, nil, signature.ErrMissing},
		{"kid not a string", func(t *testing.T, r *signature.Request) string {
			return "Bearer " + mintJWT(t, sg["ES256"], jwtClaimsFor(r), map[string]any{"kid": 7})
		}, nil, signature.ErrMalformed},
		{"unknown kid", func(t *testing.T, r *signature.Request) string {
			return "Bearer " + mintJWT(t, sg["ES256"], jwtClaimsFor(r), map[string]any{"kid": "mallory"})
		}, nil, signature.ErrKeyUnknown},
		{"DPoP proof as access token", func(t *testing.T, r *signature.Request) string {
			return "Bearer " + mintJWT(t, sg["ES256"], jwtClaimsFor(r), map[string]any{"typ": "dpop+jwt"})
		}, nil, signature.ErrInvalid},
		{"critical header extension", func(t *testing.T, r *signature.Request) string {
			return "Bearer " + mintJWT(t, sg["ES256"], jwtClaimsFor(r), map[string]any{"crit": []string{"exp"}})
		}, nil, signature.ErrInvalid},
		{"DPoP-bound token as bearer", func(t *testing.T, r *signature.Request) string {
			cl := jwtClaimsFor(r)
			cl["cnf"] = map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}
			return "Bearer " + mintJWT(t, sg["ES256"], cl, nil)
		}, nil, signature.ErrInvalid},
		{"tampered payload", func(t *testing.T, r *signature.Request) string {
			tok := mintJWT(t, sg["ES256"], jwtClaimsFor(r), nil)
			parts := strings.Split(tok, ".")
			other := strings.Split(mintJWT(t, sg["ES256"], jwtClaimsFor(r), nil), ".")
			return "Bearer " + parts[0] + "." + other[1] + "." + parts[2]
		}, nil, signature.ErrInvalid},
		{"missing htm", func(t *testing.T, r *signature.Request) string {
			cl := jwtClaimsFor(r)
			delete(cl, "htm")
			return "Bearer " + mintJWT(t, sg["ES256"], cl, nil)
		}, nil, signature.ErrMissing},
		{"missing htu", func(t *testing.T, r *signature.Request) string {
			cl := jwtClaimsFor(r)
			delete(cl, "htu")
			return "Bearer " + mintJWT(t, sg["ES256"], cl, nil)
		}, nil, signature.ErrMissing},
		{"missing bsh", func(t *testing.T, r *signature.Request) string {
			cl := jwtClaimsFor(r)
			delete(cl, "bsh")
			return "Bearer " + mintJWT(t, sg["ES256"], cl, nil)
		}, nil, signature.ErrMissing},
		{"htm not a string", func(t *testing.T, r *signature.Request) string {
			cl := jwtClaimsFor(r)
			cl["htm"] = []string{"POST"}
			return "Bearer " + mintJWT(t, sg["ES256"], cl, nil)
		}, nil, signature.ErrMalformed},
		{"other method", nil, func(r *signature.Request) { r.Method = http.MethodPut }, signature.ErrInvalid},
		{"other path", nil, func(r *signature.Request) { r.Target = "/v1/refunds?currency=eur" }, signature.ErrInvalid},
		{"path prefix", nil, func(r *signature.Request) { r.Target = "/v1/charges/1" }, signature.ErrInvalid},
		{"other host", nil, func(r *signature.Request) { r.Host = "api.example.com:8443" }, signature.ErrInvalid},
		{"other scheme", nil, func(r *signature.Request) { r.Scheme = "http" }, signature.ErrInvalid},
		{"other body", nil, func(r *signature.Request) { r.Body = []byte(`{"amount":999}`) }, signature.ErrInvalid},
		{"no body", nil, func(r *signature.Request) { r.Body = nil }, signature.ErrInvalid},
		{"no Authorization header", func(*testing.T, *signature.Request) string { return "" }, nil, signature.ErrMissing},
		{"other scheme name", func(t *testing.T, r *signature.Request) string {
			return "Basic " + mintJWT(t, sg["ES256"], jwtClaimsFor(r), nil)
		}, nil, signature.ErrMissing},
		{"DPoP scheme with DPoP off", func(t *testing.T, r *signature.Request) string {
			return "DPoP " + mintJWT(t, sg["ES256"], jwtClaimsFor(r), nil)
		}, nil, signature.ErrMissing},
		{"empty credentials", func(*testing.T, *signature.Request) string { return "Bearer " }, nil, signature.ErrMissing},
		{"prefix alone", func(*testing.T, *signature.Request) string { return "Bearer" }, nil, signature.ErrMissing},
		{"one segment", func(*testing.T, *signature.Request) string { return "Bearer abc" }, nil, signature.ErrMalformed},
		{"four segments", func(t *testing.T, r *signature.Request) string {
			return "Bearer " + mintJWT(t, sg["ES256"], jwtClaimsFor(r), nil) + ".x"
		}, nil, signature.ErrMalformed},
		{"padding", func(t *testing.T, r *signature.Request) string {
			return "Bearer " + mintJWT(t, sg["ES256"], jwtClaimsFor(r), nil) + "=="
		}, nil, signature.ErrMalformed},
		{"header not JSON", func(*testing.T, *signature.Request) string { return "Bearer bm90IGpzb24.e30.c2ln" }, nil, signature.ErrMalformed},
		{"claims not JSON", func(*testing.T, *signature.Request) string {
			return "Bearer eyJhbGciOiJFUzI1NiIsImtpZCI6ImVzIn0.bm90IGpzb24.c2ln"
		}, nil, signature.ErrMalformed},
		{"alg missing", func(*testing.T, *signature.Request) string { return "Bearer eyJraWQiOiJlcyJ9.e30.c2ln" }, nil, signature.ErrMalformed},
		{"alg unknown", func(*testing.T, *signature.Request) string {
			return "Bearer eyJhbGciOiJIUzEwMjQiLCJraWQiOiJocyJ9.e30.c2ln"
		}, nil, signature.ErrInvalid},
		{"over the size limit", func(*testing.T, *signature.Request) string {
			return "Bearer " + strings.Repeat("a", jwtsig.DefaultMaxTokenBytes) + ".b.c"
		}, nil, signature.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := jwtRequest()
			if tt.auth != nil {
				if a := tt.auth(t, r); a != "" {
					r.Header.Set("Authorization", a)
				}
			} else {
				withBearer(r, mintJWT(t, sg["ES256"], jwtClaimsFor(r), nil))
			}
			if tt.mutate != nil {
				tt.mutate(r)
			}
			v, err := s.Verify(context.Background(), r)
			require.ErrorIs(t, err, tt.want)
			assert.Equal(t, signature.Verified{}, v)
			requireOneCategory(t, err)
			tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if len(tok) > 8 {
				assert.NotContains(t, err.Error(), tok, "the detail never echoes the token")
			}
		})
	}
}

// requireOneCategory checks that err maps to exactly one of the sentinels
// the problem map knows, so that its code does not depend on the order of
// that map.
func requireOneCategory(t *testing.T, err error) {
	t.Helper()
	n := 0
	for _, s := range []error{
		signature.ErrMissing, signature.ErrMalformed, signature.ErrKeyUnknown, signature.ErrInvalid,
		timestamp.ErrMissing, timestamp.ErrMalformed, timestamp.ErrExpired, timestamp.ErrInFuture,
		nonce.ErrMissing, nonce.ErrMalformed,
	} {
		if errors.Is(err, s) {
			n++
		}
	}
	require.Equal(t, 1, n, "error %q matches %d categories", err, n)
}

func otherP256(t *testing.T) any {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

func TestJWTLeeway(t *testing.T) {
	s := newJWTScheme(t)
	sg := jwtSigners(t)["EdDSA"]
	for _, tc := range []struct {
		claim string
		at    time.Time
	}{{"exp", jwtNow.Add(-29 * time.Second)}, {"nbf", jwtNow.Add(29 * time.Second)}} {
		r := jwtRequest()
		cl := jwtClaimsFor(r)
		cl[tc.claim] = tc.at.Unix()
		_, err := s.Verify(context.Background(), withBearer(r, mintJWT(t, sg, cl, nil)))
		assert.NoError(t, err, "%s within the 30s leeway", tc.claim)
	}
	strict := newJWTScheme(t, jwtsig.WithLeeway(time.Second))
	r := jwtRequest()
	cl := jwtClaimsFor(r)
	cl["exp"] = jwtNow.Add(-2 * time.Second).Unix()
	_, err := strict.Verify(context.Background(), withBearer(r, mintJWT(t, sg, cl, nil)))
	assert.ErrorIs(t, err, timestamp.ErrExpired)
}

func TestJWTAudienceList(t *testing.T) {
	s := newJWTScheme(t)
	r := jwtRequest()
	cl := jwtClaimsFor(r)
	cl["aud"] = []string{"https://other.example", jwtAudience}
	_, err := s.Verify(context.Background(), withBearer(r, mintJWT(t, jwtSigners(t)["ES256"], cl, nil)))
	assert.NoError(t, err)
}

func TestJWTSubject(t *testing.T) {
	s := newJWTScheme(t, jwtsig.WithSubject("svc-a"))
	sg := jwtSigners(t)["ES256"]
	r := jwtRequest()
	cl := jwtClaimsFor(r)
	cl["sub"] = "svc-a"
	_, err := s.Verify(context.Background(), withBearer(r, mintJWT(t, sg, cl, nil)))
	require.NoError(t, err)
	r = jwtRequest()
	_, err = s.Verify(context.Background(), withBearer(r, mintJWT(t, sg, jwtClaimsFor(r), nil)))
	assert.ErrorIs(t, err, signature.ErrInvalid)
}

func TestJWTHTUComparison(t *testing.T) {
	s := newJWTScheme(t)
	sg := jwtSigners(t)["ES256"]
	tests := []struct {
		name         string
		host, target string
		htu          string
		ok           bool
	}{
		{"query ignored", "api.example.com", "/v1/charges?a=1&b=2", jwtHTU, true},
		{"no query", "api.example.com", "/v1/charges", jwtHTU, true},
		{"host lowercased", "API.Example.COM", "/v1/charges", jwtHTU, true},
		{"htu host must be lowercase", "api.example.com", "/v1/charges", "https://API.example.com/v1/charges", false},
		{"port kept", "api.example.com:8443", "/v1/charges", "https://api.example.com:8443/v1/charges", true},
		{"path as sent", "api.example.com", "/v1/a%2Fb", "https://api.example.com/v1/a%2Fb", true},
		{"path not decoded", "api.example.com", "/v1/a%2Fb", "https://api.example.com/v1/a/b", false},
		{"trailing slash differs", "api.example.com", "/v1/charges/", jwtHTU, false},
		{"htu with query", "api.example.com", "/v1/charges?x=1", jwtHTU + "?x=1", false},
		{"htu with fragment", "api.example.com", "/v1/charges", jwtHTU + "#f", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := jwtRequest()
			r.Host, r.Target = tt.host, tt.target
			cl := jwtClaimsFor(r)
			cl["htu"] = tt.htu
			_, err := s.Verify(context.Background(), withBearer(r, mintJWT(t, sg, cl, nil)))
			if tt.ok {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, signature.ErrInvalid)
			}
		})
	}
}

func TestJWTBindOff(t *testing.T) {
	s := newJWTScheme(t, jwtsig.WithBind())
	sg := jwtSigners(t)["ES256"]
	r := jwtRequest()
	cl := jwtClaimsFor(r)
	delete(cl, "htm")
	delete(cl, "htu")
	delete(cl, "bsh")
	_, err := s.Verify(context.Background(), withBearer(r, mintJWT(t, sg, cl, nil)))
	require.NoError(t, err, "an unbound token passes when binding is off")

	r = jwtRequest()
	tok := mintJWT(t, sg, jwtClaimsFor(r), nil)
	r.Method = http.MethodDelete
	_, err = s.Verify(context.Background(), withBearer(r, tok))
	assert.ErrorIs(t, err, signature.ErrInvalid, "a binding claim the token carries is still checked")

	only := newJWTScheme(t, jwtsig.WithBind(jwtsig.ClaimHTM))
	r = jwtRequest()
	cl = jwtClaimsFor(r)
	delete(cl, "bsh")
	delete(cl, "htu")
	_, err = only.Verify(context.Background(), withBearer(r, mintJWT(t, sg, cl, nil)))
	assert.NoError(t, err)
}

func TestJWTCustomHeader(t *testing.T) {
	s := newJWTScheme(t, jwtsig.WithHeader("x-access-token", ""))
	r := jwtRequest()
	r.Header.Set("X-Access-Token", mintJWT(t, jwtSigners(t)["HS256"], jwtClaimsFor(r), nil))
	_, err := s.Verify(context.Background(), r)
	require.NoError(t, err)

	r = jwtRequest()
	_, err = s.Verify(context.Background(), r)
	require.ErrorIs(t, err, signature.ErrMissing)
	assert.Empty(t, signature.WWWAuthenticate(err), "no Bearer challenge outside Authorization")
}

func TestJWTPrefixCaseInsensitive(t *testing.T) {
	s := newJWTScheme(t)
	r := jwtRequest()
	r.Header.Set("Authorization", "bearer   "+mintJWT(t, jwtSigners(t)["HS256"], jwtClaimsFor(r), nil))
	_, err := s.Verify(context.Background(), r)
	assert.NoError(t, err)
}

func TestJWTTwoAuthorizationHeaders(t *testing.T) {
	s := newJWTScheme(t)
	r := jwtRequest()
	tok := mintJWT(t, jwtSigners(t)["HS256"], jwtClaimsFor(r), nil)
	r.Header.Add("Authorization", "Bearer "+tok)
	r.Header.Add("Authorization", "Bearer "+tok)
	_, err := s.Verify(context.Background(), r)
	assert.ErrorIs(t, err, signature.ErrMalformed)
}

func TestJWTHMACRotation(t *testing.T) {
	old := []byte("old-secret-0123456789abcdef-0123")
	cur := []byte("new-secret-0123456789abcdef-0123")
	s, err := jwtsig.New([]signature.Key{{ID: "rot", Secrets: [][]byte{cur, old}}}, jwtsig.WithClock(jwtFixedClock))
	require.NoError(t, err)
	for _, sec := range [][]byte{cur, old} {
		r := jwtRequest()
		_, err := s.Verify(context.Background(), withBearer(r, mintJWT(t, jwtSigner{"rot", jwt.SigningMethodHS256, sec}, jwtClaimsFor(r), nil)))
		assert.NoError(t, err)
	}
	r := jwtRequest()
	_, err = s.Verify(context.Background(), withBearer(r, mintJWT(t, jwtSigner{"rot", jwt.SigningMethodHS256, []byte("retired-secret-0123456789abcdef-")}, jwtClaimsFor(r), nil)))
	assert.ErrorIs(t, err, signature.ErrInvalid)
}

func TestJWTChallenges(t *testing.T) {
	s := newJWTScheme(t)
	r := jwtRequest()
	_, err := s.Verify(context.Background(), r)
	assert.Equal(t, "Bearer", signature.WWWAuthenticate(err), "no error code without credentials (RFC 6750 §3.1)")

	r = jwtRequest()
	withBearer(r, "a.b.c")
	_, err = s.Verify(context.Background(), r)
	assert.Equal(t, `Bearer error="invalid_token"`, signature.WWWAuthenticate(err))

	assert.ErrorIs(t, err, signature.ErrMalformed)
	wrapped := fmt.Errorf("gateway: %w", errors.Join(errors.New("other"), err))
	assert.Equal(t, `Bearer error="invalid_token"`, signature.WWWAuthenticate(wrapped), "found through further wrapping")
	assert.True(t, strings.HasPrefix(err.Error(), "signature: malformed: "), err.Error())

	d := newJWTScheme(t, jwtsig.WithDPoP(true))
	_, err = d.Verify(context.Background(), jwtRequest())
	assert.Equal(t, `Bearer, DPoP algs="ES256 ES384 ES512 EdDSA PS256 PS384 PS512 RS256 RS384 RS512"`, signature.WWWAuthenticate(err))
	assert.Empty(t, signature.WWWAuthenticate(errors.New("other")))
}

func TestNewJWTRejectsBadKeys(t *testing.T) {
	k := jwtKeys(t)
	tests := []struct {
		name string
		keys []signature.Key
		opts []jwtsig.Option
	}{
		{"no keys", nil, nil},
		{"empty id", []signature.Key{{Secrets: [][]byte{jwtHS}}}, nil},
		{"duplicate id", []signature.Key{{ID: "a", Secrets: [][]byte{jwtHS}}, {ID: "a", Secrets: [][]byte{jwtHS}}}, nil},
		{"short HS256 secret", []signature.Key{{ID: "a", Secrets: [][]byte{[]byte("short")}}}, nil},
		{"short HS512 secret", []signature.Key{{ID: "a", Algorithm: "HS512", Secrets: [][]byte{jwtHS}}}, nil},
		{"secret with ES256", []signature.Key{{ID: "a", Algorithm: "ES256", Secrets: [][]byte{jwtHS}}}, nil},
		{"secret and public key", []signature.Key{{ID: "a", Secrets: [][]byte{jwtHS}, PublicKey: &k.es.PublicKey}}, nil},
		{"neither", []signature.Key{{ID: "a"}}, nil},
		{"RSA without algorithm", []signature.Key{{ID: "a", PublicKey: &k.rsa.PublicKey}}, nil},
		{"RSA with ES256", []signature.Key{{ID: "a", Algorithm: "ES256", PublicKey: &k.rsa.PublicKey}}, nil},
		{"P-256 with ES384", []signature.Key{{ID: "a", Algorithm: "ES384", PublicKey: &k.es.PublicKey}}, nil},
		{"Ed25519 with ES256", []signature.Key{{ID: "a", Algorithm: "ES256", PublicKey: k.ed.Public()}}, nil},
		{"none", []signature.Key{{ID: "a", Algorithm: "none", Secrets: [][]byte{jwtHS}}}, nil},
		{"private key", []signature.Key{{ID: "a", PublicKey: k.es}}, nil},
		{"unknown bind", []signature.Key{{ID: "a", Secrets: [][]byte{jwtHS}}}, []jwtsig.Option{jwtsig.WithBind("htm", "body")}},
		{"bind twice", []signature.Key{{ID: "a", Secrets: [][]byte{jwtHS}}}, []jwtsig.Option{jwtsig.WithBind("htm", "htm")}},
		{"empty header", []signature.Key{{ID: "a", Secrets: [][]byte{jwtHS}}}, []jwtsig.Option{jwtsig.WithHeader("", "Bearer")}},
		{"DPoP without prefix", []signature.Key{{ID: "a", Secrets: [][]byte{jwtHS}}}, []jwtsig.Option{jwtsig.WithHeader("X-Token", ""), jwtsig.WithDPoP(true)}},
		{"prefix with space", []signature.Key{{ID: "a", Secrets: [][]byte{jwtHS}}}, []jwtsig.Option{jwtsig.WithHeader("Authorization", "Bearer x")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := jwtsig.New(tt.keys, tt.opts...)
			assert.Error(t, err)
		})
	}
}

func TestKeyAlgorithm(t *testing.T) {
	k := jwtKeys(t)
	for _, tc := range []struct {
		key       any
		alg, want string
	}{
		{&k.es.PublicKey, "", "ES256"},
		{&k.es3.PublicKey, "", "ES384"},
		{k.ed.Public(), "", "EdDSA"},
		{&k.rsa.PublicKey, "PS512", "PS512"},
		{jwtHS, "HS256", "HS256"},
	} {
		got, err := signature.KeyAlgorithm(tc.key, tc.alg)
		require.NoError(t, err)
		assert.Equal(t, tc.want, got)
	}
}
