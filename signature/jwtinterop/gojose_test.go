package jwtinterop_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/jwtsig"
)

var now = time.Unix(1_760_000_000, 0)

func clock() time.Time { return now }

const (
	issuer   = "https://issuer.example"
	audience = "https://api.example.com"
	htu      = "https://api.example.com/v1/charges"
)

type keys struct {
	es  *ecdsa.PrivateKey
	ed  ed25519.PrivateKey
	rsa *rsa.PrivateKey
}

func newKeys(t *testing.T) keys {
	t.Helper()
	es, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	return keys{es: es, ed: ed, rsa: rk}
}

func scheme(t *testing.T, k keys, opts ...jwtsig.Option) *jwtsig.Scheme {
	t.Helper()
	opts = append([]jwtsig.Option{
		jwtsig.WithClock(clock), jwtsig.WithIssuer(issuer), jwtsig.WithAudience(audience),
	}, opts...)
	s, err := jwtsig.New([]signature.Key{
		{ID: "es", PublicKey: &k.es.PublicKey},
		{ID: "ed", PublicKey: k.ed.Public()},
		{ID: "ps", Algorithm: "PS256", PublicKey: &k.rsa.PublicKey},
	}, opts...)
	require.NoError(t, err)
	return s
}

func request() *signature.Request {
	return &signature.Request{
		Method: http.MethodPost, Scheme: "https", Host: "api.example.com",
		Target: "/v1/charges?currency=eur", Header: http.Header{}, Body: []byte(`{"amount":100}`),
	}
}

// joseToken mints a request-bound token with go-jose.
func joseToken(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, r *signature.Request, jti string) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	require.NoError(t, err)
	tok, err := josejwt.Signed(sig).
		Claims(josejwt.Claims{
			ID: jti, Issuer: issuer, Subject: "user-1", Audience: josejwt.Audience{audience},
			IssuedAt: josejwt.NewNumericDate(now), Expiry: josejwt.NewNumericDate(now.Add(5 * time.Minute)),
		}).
		Claims(map[string]any{"htm": r.Method, "htu": htu, "bsh": jwtsig.BodyHash(r.Body)}).
		Serialize()
	require.NoError(t, err)
	return tok
}

func TestGoJoseTokensVerify(t *testing.T) {
	k := newKeys(t)
	s := scheme(t, k)
	tests := []struct {
		alg jose.SignatureAlgorithm
		key any
		kid string
	}{
		{jose.ES256, k.es, "es"},
		{jose.EdDSA, k.ed, "ed"},
		{jose.PS256, k.rsa, "ps"},
	}
	for _, tt := range tests {
		t.Run(string(tt.alg), func(t *testing.T) {
			r := request()
			jti := uuid.NewString()
			r.Header.Set("Authorization", "Bearer "+joseToken(t, tt.alg, tt.key, tt.kid, r, jti))
			v, err := s.Verify(context.Background(), r)
			require.NoError(t, err)
			assert.Equal(t, signature.Verified{KeyID: tt.kid, Subject: "user-1", Timestamp: now, ReplayKey: jti}, v)

			r.Method = http.MethodPut
			_, err = s.Verify(context.Background(), r)
			assert.ErrorIs(t, err, signature.ErrInvalid, "the go-jose token is bound to its method")
		})
	}
}

func TestGoJoseDPoPProofVerifies(t *testing.T) {
	k := newKeys(t)
	s := scheme(t, k, jwtsig.WithDPoP(true))
	for name, client := range map[string]struct {
		alg jose.SignatureAlgorithm
		key crypto.Signer
	}{
		"ES256": {jose.ES256, mustP256(t)},
		"EdDSA": {jose.EdDSA, k.ed},
	} {
		t.Run(name, func(t *testing.T) {
			jkt, err := (&jose.JSONWebKey{Key: client.key.Public()}).Thumbprint(crypto.SHA256)
			require.NoError(t, err)
			ours, err := signature.JWKThumbprint(client.key.Public())
			require.NoError(t, err)
			require.Equal(t, ours, b64(jkt), "go-jose and package signature agree on the RFC 7638 thumbprint")

			token, err := (&jwtsig.Signer{
				KeyID: "es", Key: k.es, Issuer: issuer, Audience: audience, Bind: []string{}, Confirmation: ours, Now: clock,
			}).Token(httpRequest(t), nil)
			require.NoError(t, err)

			r := request()
			sig, err := jose.NewSigner(jose.SigningKey{Algorithm: client.alg, Key: client.key},
				(&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
			require.NoError(t, err)
			jti := uuid.NewString()
			proof, err := josejwt.Signed(sig).Claims(map[string]any{
				"jti": jti, "htm": r.Method, "htu": htu, "iat": now.Unix(),
				"ath": jwtsig.AccessTokenHash(token), "bsh": jwtsig.BodyHash(r.Body),
			}).Serialize()
			require.NoError(t, err)
			r.Header.Set("Authorization", "DPoP "+token)
			r.Header.Set("DPoP", proof)
			v, err := s.Verify(context.Background(), r)
			require.NoError(t, err)
			assert.Equal(t, jti, v.ReplayKey)
			assert.Equal(t, now, v.Timestamp)
		})
	}
}

func TestSignerTokensVerifyWithGoJose(t *testing.T) {
	k := newKeys(t)
	for name, tc := range map[string]struct {
		key any
		pub any
		alg jose.SignatureAlgorithm
	}{
		"ES256": {k.es, &k.es.PublicKey, jose.ES256},
		"EdDSA": {k.ed, k.ed.Public(), jose.EdDSA},
	} {
		t.Run(name, func(t *testing.T) {
			sg := &jwtsig.Signer{KeyID: "k", Key: tc.key, Issuer: issuer, Audience: audience, Subject: "svc", Now: clock}
			raw, err := sg.Token(httpRequest(t), []byte(`{"amount":100}`))
			require.NoError(t, err)
			tok, err := josejwt.ParseSigned(raw, []jose.SignatureAlgorithm{tc.alg})
			require.NoError(t, err)
			var std josejwt.Claims
			var extra map[string]any
			require.NoError(t, tok.Claims(tc.pub, &std, &extra))
			require.NoError(t, std.ValidateWithLeeway(josejwt.Expected{Issuer: issuer, AnyAudience: josejwt.Audience{audience}, Time: now}, 0))
			assert.Equal(t, "svc", std.Subject)
			assert.Equal(t, "k", tok.Headers[0].KeyID)
			assert.Equal(t, htu, extra["htu"])
			assert.Equal(t, http.MethodPost, extra["htm"])
		})
	}
}

func TestJWKsInterchange(t *testing.T) {
	k := newKeys(t)
	for name, pub := range map[string]any{"EC": &k.es.PublicKey, "OKP": k.ed.Public(), "RSA": &k.rsa.PublicKey} {
		t.Run(name, func(t *testing.T) {
			joseJSON, err := json.Marshal(jose.JSONWebKey{Key: pub, KeyID: "kid-1", Algorithm: "X", Use: "sig"})
			require.NoError(t, err)
			jk, err := signature.ParseJWKJSON(joseJSON)
			require.NoError(t, err)
			assert.Equal(t, "kid-1", jk.KeyID)
			assert.True(t, jk.Key.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub))

			ours, err := signature.PublicJWK(pub)
			require.NoError(t, err)
			b, err := json.Marshal(ours)
			require.NoError(t, err)
			var back jose.JSONWebKey
			require.NoError(t, json.Unmarshal(b, &back))
			assert.True(t, back.Key.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub))

			tp, err := back.Thumbprint(crypto.SHA256)
			require.NoError(t, err)
			ourTP, err := signature.JWKThumbprint(pub)
			require.NoError(t, err)
			assert.Equal(t, b64(tp), ourTP)
		})
	}
}

func httpRequest(t *testing.T) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, "https://api.example.com/v1/charges?currency=eur", nil)
	require.NoError(t, err)
	return r
}

func mustP256(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}
