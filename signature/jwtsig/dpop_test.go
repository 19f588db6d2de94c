package jwtsig_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/jwtsig"
	"github.com/replayguard/replayguard/timestamp"
)

const (
	invalidProof = `DPoP error="invalid_dpop_proof", algs="ES256 ES384 ES512 EdDSA PS256 PS384 PS512 RS256 RS384 RS512"`
	invalidToken = `DPoP error="invalid_token", algs="ES256 ES384 ES512 EdDSA PS256 PS384 PS512 RS256 RS384 RS512"`
)

// dpopClient is a client key that signs proofs.
type dpopClient struct {
	key    crypto.Signer
	method jwt.SigningMethod
}

func (c dpopClient) jkt(t testing.TB) string {
	t.Helper()
	jkt, err := signature.JWKThumbprint(c.key.Public())
	require.NoError(t, err)
	return jkt
}

func newDPoPClient(t testing.TB) dpopClient {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return dpopClient{key: k, method: jwt.SigningMethodES256}
}

// accessToken is a DPoP-bound access token for jkt, issued by the "es" key:
// no jti, no iat, no binding, as an authorization server issues them.
func dpopAccessToken(t testing.TB, jkt string, edit func(jwt.MapClaims)) string {
	t.Helper()
	cl := jwt.MapClaims{
		"iss": jwtIssuer, "aud": jwtAudience, "sub": "user-1",
		"exp": jwtNow.Add(time.Hour).Unix(), "cnf": map[string]any{"jkt": jkt},
	}
	if edit != nil {
		edit(cl)
	}
	return mintJWT(t, jwtSigners(t)["ES256"], cl, nil)
}

// dpopProofClaims are valid proof claims for r and the access token.
func dpopProofClaims(r *signature.Request, token string) jwt.MapClaims {
	return jwt.MapClaims{
		"jti": uuid.NewString(), "iat": jwtNow.Unix(), "htm": r.Method, "htu": jwtHTU,
		"ath": jwtsig.AccessTokenHash(token), "bsh": jwtsig.BodyHash(r.Body),
	}
}

// proof signs claims with c; header entries override the proof header, a
// nil value removes the entry.
func (c dpopClient) proof(t testing.TB, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	jwk, err := signature.PublicJWK(c.key)
	require.NoError(t, err)
	tok := jwt.NewWithClaims(c.method, claims)
	tok.Header["typ"] = "dpop+jwt"
	tok.Header["jwk"] = jwk
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
			continue
		}
		tok.Header[k] = v
	}
	var key any = c.key
	if c.method == jwt.SigningMethodNone {
		key = jwt.UnsafeAllowNoneSignatureType
	}
	out, err := tok.SignedString(key)
	require.NoError(t, err)
	return out
}

func withDPoP(r *signature.Request, token, proof string) *signature.Request {
	r.Header.Set("Authorization", "DPoP "+token)
	if proof != "" {
		r.Header.Set("DPoP", proof)
	}
	return r
}

func TestDPoPSignerVerifies(t *testing.T) {
	s := newJWTScheme(t, jwtsig.WithDPoP(true))
	k := jwtKeys(t)
	for name, key := range map[string]crypto.Signer{"ES256": otherP256(t).(crypto.Signer), "EdDSA": k.ed, "PS256": k.rsa, "ES384": k.es3} {
		t.Run(name, func(t *testing.T) {
			sg := &jwtsig.DPoPSigner{Key: key, Now: jwtFixedClock}
			jkt, err := sg.Thumbprint()
			require.NoError(t, err)
			sg.AccessToken = dpopAccessToken(t, jkt, nil)
			body := []byte(`{"amount":100}`)
			req, err := http.NewRequest(http.MethodPost, "https://api.example.com/v1/charges?currency=eur", nil)
			require.NoError(t, err)
			require.NoError(t, sg.Sign(req, body))

			r := jwtRequest()
			r.Header = req.Header
			v, err := s.Verify(context.Background(), r)
			require.NoError(t, err)
			assert.Equal(t, "es", v.KeyID)
			assert.Equal(t, "user-1", v.Subject)
			assert.Equal(t, jwtNow, v.Timestamp, "the proof's iat is the signed timestamp")
			assert.NotEmpty(t, v.ReplayKey)

			r.Body = []byte("{}")
			_, err = s.Verify(context.Background(), r)
			require.ErrorIs(t, err, signature.ErrInvalid)
			assert.Equal(t, invalidProof, signature.WWWAuthenticate(err))
		})
	}
}

func TestDPoPBearerStillAccepted(t *testing.T) {
	s := newJWTScheme(t, jwtsig.WithDPoP(true))
	r := jwtRequest()
	_, err := s.Verify(context.Background(), withBearer(r, mintJWT(t, jwtSigners(t)["ES256"], jwtClaimsFor(r), nil)))
	assert.NoError(t, err)
}

func TestDPoPRejections(t *testing.T) {
	s := newJWTScheme(t, jwtsig.WithDPoP(true))
	client := newDPoPClient(t)
	other := newDPoPClient(t)
	type parts struct{ token, proof string }
	tests := []struct {
		name      string
		build     func(t *testing.T, r *signature.Request) parts
		mutate    func(r *signature.Request)
		want      error
		challenge string
	}{
		{"no proof", func(t *testing.T, r *signature.Request) parts {
			return parts{dpopAccessToken(t, client.jkt(t), nil), ""}
		}, nil, signature.ErrMissing, invalidProof},
		{"proof typ JWT", func(t *testing.T, r *signature.Request) parts {
			tok := dpopAccessToken(t, client.jkt(t), nil)
			return parts{tok, client.proof(t, dpopProofClaims(r, tok), map[string]any{"typ": "JWT"})}
		}, nil, signature.ErrInvalid, invalidProof},
		{"proof without typ", func(t *testing.T, r *signature.Request) parts {
			tok := dpopAccessToken(t, client.jkt(t), nil)
			return parts{tok, client.proof(t, dpopProofClaims(r, tok), map[string]any{"typ": nil})}
		}, nil, signature.ErrInvalid, invalidProof},
		{"proof without jwk", func(t *testing.T, r *signature.Request) parts {
			tok := dpopAccessToken(t, client.jkt(t), nil)
			return parts{tok, client.proof(t, dpopProofClaims(r, tok), map[string]any{"jwk": nil})}
		}, nil, signature.ErrMissing, invalidProof},
		{"proof jwk not an object", func(t *testing.T, r *signature.Request) parts {
			tok := dpopAccessToken(t, client.jkt(t), nil)
			return parts{tok, client.proof(t, dpopProofClaims(r, tok), map[string]any{"jwk": "key"})}
		}, nil, signature.ErrMalformed, invalidProof},
		{"proof jwk with the private key", func(t *testing.T, r *signature.Request) parts {
			tok := dpopAccessToken(t, client.jkt(t), nil)
			jwk, err := signature.PublicJWK(client.key)
			require.NoError(t, err)
			jwk["d"] = "AAAA"
			return parts{tok, client.proof(t, dpopProofClaims(r, tok), map[string]any{"jwk": jwk})}
		}, nil, signature.ErrInvalid, invalidProof},
		{"proof with a symmetric alg", func(t *testing.T, r *signature.Request) parts {
			tok := dpopAccessToken(t, client.jkt(t), nil)
			p := jwt.NewWithClaims(jwt.SigningMethodHS256, dpopProofClaims(r, tok))
			p.Header["typ"] = "dpop+jwt"
			p.Header["jwk"] = map[string]any{"kty": "oct", "k": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}
			out, err := p.SignedString(jwtHS)
			require.NoError(t, err)
			return parts{tok, out}
		}, nil, signature.ErrInvalid, invalidProof},
		{"proof alg none", func(t *testing.T, r *signature.Request) parts {
			tok := dpopAccessToken(t, client.jkt(t), nil)
			none := dpopClient{key: client.key, method: jwt.SigningMethodNone}
			return parts{tok, none.proof(t, dpopProofClaims(r, tok), nil)}
		}, nil, signature.ErrInvalid, invalidProof},
		{"proof alg not fitting the jwk", func(t *testing.T, r *signature.Request) parts {
			tok := dpopAccessToken(t, client.jkt(t), nil)
			p384 := dpopClient{key: jwtKeys(t).es3, method: jwt.SigningMethodES384}
			jwk, err := signature.PublicJWK(client.key)
			require.NoError(t, err)
			return parts{tok, p384.proof(t, dpopProofClaims(r, tok), map[string]any{"jwk": jwk})}
		}, nil, signature.ErrInvalid, invalidProof},
		{"proof signed by another key than its jwk", func(t *testing.T, r *signature.Request) parts {
			tok := dpopAccessToken(t, client.jkt(t), nil)
			jwk, err := signature.PublicJWK(client.key)
			require.NoError(t, err)
			return parts{tok, other.proof(t, dpopProofClaims(r, tok), map[string]any{"jwk": jwk})}
		}, nil, signature.ErrInvalid, invalidProof},
		{"token bound to another key", func(t *testing.T, r *signature.Request) parts {
			tok := dpopAccessToken(t, other.jkt(t), nil)
			return parts{tok, client.proof(t, dpopProofClaims(r, tok), nil)}
		}, nil, signature.ErrInvalid, invalidToken},
		{"token not bound", func(t *testing.T, r *signature.Request) parts {
			tok := dpopAccessToken(t, "", func(c jwt.MapClaims) { delete(c, "cnf") })
			return parts{tok, client.proof(t, dpopProofClaims(r, tok), nil)}
		}, nil, signature.ErrMissing, invalidToken},
		{"token expired", func(t *testing.T, r *signature.Request) parts {
			tok := dpopAccessToken(t, client.jkt(t), func(c jwt.MapClaims) { c["exp"] = jwtNow.Add(-time.Hour).Unix() })
			return parts{tok, client.proof(t, dpopProofClaims(r, tok), nil)}
		}, nil, timestamp.ErrExpired, invalidToken},
		{"token with unknown kid", func(t *testing.T, r *signature.Request) parts {
			tok := mintJWT(t, jwtSigners(t)["ES256"], jwt.MapClaims{"cnf": map[string]any{"jkt": client.jkt(t)}}, map[string]any{"kid": "nobody"})
			return parts{tok, client.proof(t, dpopProofClaims(r, tok), nil)}
		}, nil, signature.ErrKeyUnknown, invalidToken},
		{"token bound to another method", func(t *testing.T, r *signature.Request) parts {
			tok := dpopAccessToken(t, client.jkt(t), func(c jwt.MapClaims) { c["htm"] = http.MethodGet })
			return parts{tok, client.proof(t, dpopProofClaims(r, tok), nil)}
		}, nil, signature.ErrInvalid, invalidToken},
		{"proof for another token", func(t *testing.T, r *signature.Request) parts {
			tok := dpopAccessToken(t, client.jkt(t), nil)
			return parts{tok, client.proof(t, dpopProofClaims(r, dpopAccessToken(t, client.jkt(t), func(c jwt.MapClaims) { c["sub"] = "x" })), nil)}
		}, nil, signature.ErrInvalid, invalidProof},
		{"proof without ath", func(t *testing.T, r *signature.Request) parts {
			tok := dpopAccessToken(t, client.jkt(t), nil)
			cl := dpopProofClaims(r, tok)
			delete(cl, "ath")
			return parts{tok, client.proof(t, cl, nil)}
		}, nil, signature.ErrMissing, invalidProof},
		{"proof without htm", func(t *testing.T, r *signature.Request) parts {
			tok := dpopAccessToken(t, client.jkt(t), nil)
			cl := dpopProofClaims(r, tok)
			delete(cl, "htm")
			return parts{tok, client.proof(t, cl, nil)}
		}, nil, signature.ErrMissing, invalidProof},
		{"proof without htu", func(t *testing.T, r *signature.Request) parts {
			tok := dpopAccessToken(t, client.jkt(t), nil)
			cl := dpopProofClaims(r, tok)
			delete(cl, "htu")
			return parts{tok, client.proof(t, cl, nil)}
		}, nil, signature.ErrMissing, invalidProof},
		{"proof without bsh while the body is bound", func(t *testing.T, r *signature.Request) parts {
			tok := dpopAccessToken(t, client.jkt(t), nil)
			cl := dpopProofClaims(r, tok)
			delete(cl, "bsh")
			return parts{tok, client.proof(t, cl, nil)}
		}, nil, signature.ErrMissing, invalidProof},
		{"proof without jti", func(t *testing.T, r *signature.Request) parts {
			tok := dpopAccessToken(t, client.jkt(t), nil)
			cl := dpopProofClaims(r, tok)
			delete(cl, "jti")
			return parts{tok, client.proof(t, cl, nil)}
		}, nil, nonce.ErrMissing, invalidProof},
		{"proof without iat", func(t *testing.T, r *signature.Request) parts {
			tok := dpopAccessToken(t, client.jkt(t), nil)
			cl := dpopProofClaims(r, tok)
			delete(cl, "iat")
			return parts{tok, client.proof(t, cl, nil)}
		}, nil, timestamp.ErrMissing, invalidProof},
		{"proof lifted to another method", nil, func(r *signature.Request) { r.Method = http.MethodDelete }, signature.ErrInvalid, invalidProof},
		{"proof lifted to another path", nil, func(r *signature.Request) { r.Target = "/v1/admin" }, signature.ErrInvalid, invalidProof},
		{"proof lifted to another body", nil, func(r *signature.Request) { r.Body = []byte("x") }, signature.ErrInvalid, invalidProof},
		{"two proofs", nil, func(r *signature.Request) { r.Header.Add("DPoP", r.Header.Get("DPoP")) }, signature.ErrMalformed, invalidProof},
		{"garbage proof", nil, func(r *signature.Request) { r.Header.Set("DPoP", "x.y") }, signature.ErrMalformed, invalidProof},
		{"oversized proof", nil, func(r *signature.Request) {
			r.Header.Set("DPoP", strings.Repeat("a", jwtsig.DefaultMaxTokenBytes)+".b.c")
		}, signature.ErrMalformed, invalidProof},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := jwtRequest()
			var p parts
			if tt.build != nil {
				p = tt.build(t, r)
			} else {
				p.token = dpopAccessToken(t, client.jkt(t), nil)
				p.proof = client.proof(t, dpopProofClaims(r, p.token), nil)
			}
			withDPoP(r, p.token, p.proof)
			if tt.mutate != nil {
				tt.mutate(r)
			}
			_, err := s.Verify(context.Background(), r)
			require.ErrorIs(t, err, tt.want)
			requireOneCategory(t, err)
			assert.Equal(t, tt.challenge, signature.WWWAuthenticate(err))
		})
	}
}

func TestDPoPWithoutBodyBinding(t *testing.T) {
	s := newJWTScheme(t, jwtsig.WithDPoP(true), jwtsig.WithBind(jwtsig.ClaimHTM, jwtsig.ClaimHTU))
	client := newDPoPClient(t)
	r := jwtRequest()
	tok := dpopAccessToken(t, client.jkt(t), nil)
	cl := dpopProofClaims(r, tok)
	delete(cl, "bsh")
	_, err := s.Verify(context.Background(), withDPoP(r, tok, client.proof(t, cl, nil)))
	require.NoError(t, err, "an RFC 9449 proof without bsh passes when the body is not bound")

	r = jwtRequest()
	cl = dpopProofClaims(r, tok)
	cl["htm"] = http.MethodGet
	_, err = s.Verify(context.Background(), withDPoP(r, tok, client.proof(t, cl, nil)))
	assert.ErrorIs(t, err, signature.ErrInvalid, "htm and htu are always bound")
}

func TestDPoPSignerMintsBoundTokens(t *testing.T) {
	s := newJWTScheme(t, jwtsig.WithDPoP(true))
	k := jwtKeys(t)
	sg := &jwtsig.DPoPSigner{
		Key: k.ed, Now: jwtFixedClock,
		Mint: &jwtsig.Signer{KeyID: "es", Key: k.es, Issuer: jwtIssuer, Audience: jwtAudience, Subject: "svc", Bind: []string{}, Now: jwtFixedClock},
	}
	req, err := http.NewRequest(http.MethodPost, "https://api.example.com/v1/charges", nil)
	require.NoError(t, err)
	require.NoError(t, sg.Sign(req, []byte(`{"amount":100}`)))
	r := jwtRequest()
	r.Header = req.Header
	v, err := s.Verify(context.Background(), r)
	require.NoError(t, err)
	assert.Equal(t, "svc", v.Subject)
}
