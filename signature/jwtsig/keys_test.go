package jwtsig_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/signature"
)

func TestParsePublicKeyPEM(t *testing.T) {
	k := jwtKeys(t)
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	require.NoError(t, err)
	cert := selfSignedPEM(t, k.es)
	tests := []struct {
		name string
		pem  []byte
		want any
	}{
		{"PKIX RSA", pemPublicKey(t, &k.rsa.PublicKey), &k.rsa.PublicKey},
		{"PKCS1 RSA", pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)}), &k.rsa.PublicKey},
		{"PKIX P-256", pemPublicKey(t, &k.es.PublicKey), &k.es.PublicKey},
		{"PKIX P-384", pemPublicKey(t, &k.es3.PublicKey), &k.es3.PublicKey},
		{"PKIX P-521", pemPublicKey(t, &p521.PublicKey), &p521.PublicKey},
		{"PKIX Ed25519", pemPublicKey(t, k.ed.Public()), k.ed.Public()},
		{"certificate", cert, &k.es.PublicKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := signature.ParsePublicKeyPEM(tt.pem)
			require.NoError(t, err)
			assert.True(t, got.(interface{ Equal(crypto.PublicKey) bool }).Equal(tt.want))
		})
	}
}

func TestParsePublicKeyPEMRefuses(t *testing.T) {
	k := jwtKeys(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(k.es)
	require.NoError(t, err)
	tests := []struct {
		name string
		pem  []byte
	}{
		{"no PEM", []byte("not a key")},
		{"private key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})},
		{"RSA private key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.rsa)})},
		{"RSA 1024", pemPublicKey(t, &small.PublicKey)},
		{"unknown block", pem.EncodeToMemory(&pem.Block{Type: "SECRET", Bytes: []byte{1}})},
		{"garbage DER", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := signature.ParsePublicKeyPEM(tt.pem)
			assert.Error(t, err)
		})
	}
}

func selfSignedPEM(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "t"}, NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<33, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestJWKRoundTrip(t *testing.T) {
	k := jwtKeys(t)
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	require.NoError(t, err)
	for name, pub := range map[string]any{
		"RSA": &k.rsa.PublicKey, "P-256": &k.es.PublicKey, "P-384": &k.es3.PublicKey, "P-521": &p521.PublicKey, "Ed25519": k.ed.Public(),
	} {
		t.Run(name, func(t *testing.T) {
			m, err := signature.PublicJWK(pub)
			require.NoError(t, err)
			// Through JSON, as a JWK travels.
			b, err := json.Marshal(m)
			require.NoError(t, err)
			jk, err := signature.ParseJWKJSON(b)
			require.NoError(t, err)
			assert.True(t, jk.Key.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub))
			tp1, err := signature.JWKThumbprint(pub)
			require.NoError(t, err)
			tp2, err := signature.JWKThumbprint(jk.Key)
			require.NoError(t, err)
			assert.Equal(t, tp1, tp2)
			assert.Len(t, tp1, 43)
		})
	}
	m, err := signature.PublicJWK(k.es)
	require.NoError(t, err, "a private key gives its public JWK")
	assert.NotContains(t, m, "d")
}

// TestJWKThumbprintRFC7638 checks the example of RFC 7638 §3.1.
func TestJWKThumbprintRFC7638(t *testing.T) {
	jk, err := signature.ParseJWK(map[string]any{
		"kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
		"n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
	})
	require.NoError(t, err)
	assert.Equal(t, "2011-04-29", jk.KeyID)
	assert.Equal(t, "RS256", jk.Algorithm)
	tp, err := signature.JWKThumbprint(jk.Key)
	require.NoError(t, err)
	assert.Equal(t, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs", tp)
}

func TestParseJWKRefuses(t *testing.T) {
	k := jwtKeys(t)
	ec, err := signature.PublicJWK(&k.es.PublicKey)
	require.NoError(t, err)
	with := func(m map[string]any, kv ...any) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(out, kv[i].(string))
				continue
			}
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	offCurve := with(ec, "y", ec["x"])
	tests := []struct {
		name string
		jwk  map[string]any
	}{
		{"no kty", with(ec, "kty", nil)},
		{"kty not a string", with(ec, "kty", 1.0)},
		{"unknown kty", with(ec, "kty", "XYZ")},
		{"unknown curve", with(ec, "crv", "P-192")},
		{"point off the curve", offCurve},
		{"short x", with(ec, "x", "AAAA")},
		{"padded x", with(ec, "x", ec["x"].(string)+"=")},
		{"private EC", with(ec, "d", "AAAA")},
		{"private RSA member", map[string]any{"kty": "RSA", "n": "AQAB", "e": "AQAB", "p": "AQAB"}},
		{"short RSA", map[string]any{"kty": "RSA", "n": "AQAB", "e": "AQAB"}},
		{"even RSA exponent", map[string]any{"kty": "RSA", "n": "AQAB", "e": "Ag"}},
		{"OKP X25519", map[string]any{"kty": "OKP", "crv": "X25519", "x": "AAAA"}},
		{"Ed25519 short", map[string]any{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}},
		{"kid not a string", with(ec, "kid", 1.0)},
		{"oct without k", map[string]any{"kty": "oct"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := signature.ParseJWK(tt.jwk)
			assert.Error(t, err)
		})
	}
	_, err = signature.ParseJWK(with(ec, "d", "AAAA"))
	assert.ErrorIs(t, err, signature.ErrPrivateKey)
	_, err = signature.ParseJWKJSON([]byte("{"))
	assert.Error(t, err)
	_, err = signature.JWKThumbprint(ed25519.PublicKey{1})
	assert.NoError(t, err, "thumbprints hash what they get")
	_, err = signature.JWKThumbprint("key")
	assert.Error(t, err)
}

func TestJWKSecret(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	okp, err := signature.PublicJWK(pub)
	require.NoError(t, err)
	j, err := signature.ParseJWK(okp)
	require.NoError(t, err)
	_, ok := j.Secret()
	assert.False(t, ok, "an Ed25519 key is no secret")

	j, err = signature.ParseJWK(map[string]any{"kty": "oct", "k": "c2VjcmV0"})
	require.NoError(t, err)
	s, ok := j.Secret()
	require.True(t, ok)
	assert.Equal(t, []byte("secret"), s)
}
