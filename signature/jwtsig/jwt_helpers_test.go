package jwtsig_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/jwtsig"
)

// jwtNow is the fixed clock of the jwt tests.
var jwtNow = time.Unix(1_760_000_000, 0)

func jwtFixedClock() time.Time { return jwtNow }

const (
	jwtIssuer   = "https://issuer.example"
	jwtAudience = "https://api.example.com"
	jwtHTU      = "https://api.example.com/v1/charges"
)

// jwtHS is a 32-byte HS256 secret.
var jwtHS = []byte("0123456789abcdef0123456789abcdef")

// jwtTestKeys are generated once per test binary: RSA key generation is slow.
type jwtTestKeys struct {
	es  *ecdsa.PrivateKey
	es3 *ecdsa.PrivateKey
	ed  ed25519.PrivateKey
	rsa *rsa.PrivateKey
}

var (
	jwtKeysOnce sync.Once
	jwtKeysVal  jwtTestKeys
)

func jwtKeys(t testing.TB) jwtTestKeys {
	t.Helper()
	jwtKeysOnce.Do(func() {
		var err error
		jwtKeysVal.es, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		jwtKeysVal.es3, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			panic(err)
		}
		_, jwtKeysVal.ed, err = ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		jwtKeysVal.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
	})
	return jwtKeysVal
}

// pemPublicKey returns the PKIX PEM of a public key.
func pemPublicKey(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// jwtSchemeKeys are the keys every jwt test scheme verifies with.
func jwtSchemeKeys(t testing.TB) []signature.Key {
	k := jwtKeys(t)
	return []signature.Key{
		{ID: "hs", Secrets: [][]byte{jwtHS}},
		{ID: "es", PublicKey: &k.es.PublicKey},
		{ID: "es384", PublicKey: &k.es3.PublicKey},
		{ID: "ed", PublicKey: k.ed.Public()},
		{ID: "rs", Algorithm: "RS256", PublicKey: &k.rsa.PublicKey},
		{ID: "ps", Algorithm: "PS256", PublicKey: &k.rsa.PublicKey},
	}
}

func newJWTScheme(t testing.TB, opts ...jwtsig.Option) *jwtsig.Scheme {
	t.Helper()
	opts = append([]jwtsig.Option{
		jwtsig.WithClock(jwtFixedClock), jwtsig.WithIssuer(jwtIssuer), jwtsig.WithAudience(jwtAudience),
	}, opts...)
	s, err := jwtsig.New(jwtSchemeKeys(t), opts...)
	require.NoError(t, err)
	return s
}

// jwtSigner is how a test signs a token: a method, a key and a kid.
type jwtSigner struct {
	kid    string
	method jwt.SigningMethod
	key    any
}

func jwtSigners(t testing.TB) map[string]jwtSigner {
	k := jwtKeys(t)
	return map[string]jwtSigner{
		"HS256": {"hs", jwt.SigningMethodHS256, jwtHS},
		"ES256": {"es", jwt.SigningMethodES256, k.es},
		"ES384": {"es384", jwt.SigningMethodES384, k.es3},
		"EdDSA": {"ed", jwt.SigningMethodEdDSA, k.ed},
		"RS256": {"rs", jwt.SigningMethodRS256, k.rsa},
		"PS256": {"ps", jwt.SigningMethodPS256, k.rsa},
	}
}

// jwtRequest is the request the jwt tests send, before its token is set.
func jwtRequest() *signature.Request {
	return &signature.Request{
		Method: http.MethodPost, Scheme: "https", Host: "api.example.com",
		Target: "/v1/charges?currency=eur", Header: http.Header{}, Body: []byte(`{"amount":100}`),
	}
}

// jwtClaimsFor are valid claims for r at the fixed clock.
func jwtClaimsFor(r *signature.Request) jwt.MapClaims {
	return jwt.MapClaims{
		"jti": uuid.NewString(), "iat": jwtNow.Unix(), "exp": jwtNow.Add(5 * time.Minute).Unix(),
		"iss": jwtIssuer, "aud": jwtAudience, "sub": "user-1",
		"htm": r.Method, "htu": jwtHTU, "bsh": jwtsig.BodyHash(r.Body),
	}
}

// mint signs claims with s; header entries are set on the JWS header, a
// nil value removes the entry.
func mintJWT(t testing.TB, s jwtSigner, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(s.method, claims)
	tok.Header["kid"] = s.kid
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
			continue
		}
		tok.Header[k] = v
	}
	out, err := tok.SignedString(s.key)
	require.NoError(t, err)
	return out
}

func withBearer(r *signature.Request, tok string) *signature.Request {
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}
