package jwtsig

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/timestamp"
)

// RFC 7515 Appendix A.1: a JWS using HMAC SHA-256, its key as a JWK and the
// compact serialization of the example.
const (
	rfc7515A1JWK   = `{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}`
	rfc7515A1Token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9" +
		".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ" +
		".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	// rfc7515A1Exp is the example's exp claim.
	rfc7515A1Exp = 1300819380
)

func rfc7515A1Scheme(t *testing.T, at time.Time) *Scheme {
	t.Helper()
	jk, err := signature.ParseJWKJSON([]byte(rfc7515A1JWK))
	require.NoError(t, err)
	secret, ok := jk.Key.([]byte)
	require.True(t, ok, "an oct JWK parses to its secret bytes")
	require.Len(t, secret, 64)
	s, err := New([]signature.Key{{ID: "joe", Secrets: [][]byte{secret}}},
		WithClock(func() time.Time { return at }), WithIssuer("joe"), WithBind())
	require.NoError(t, err)
	return s
}

// verifyA1 runs the token path on the A.1 token, whose header names no
// key: the key function resolves it to the configured key "joe".
func verifyA1(s *Scheme, raw string) (jwt.MapClaims, error) {
	c := &call{s: s}
	var cl tokenClaims
	var claims jwt.MapClaims
	err := c.parseTokenWith(raw, &cl, func(t *jwt.Token) (any, error) {
		claims = t.Claims.(jwt.MapClaims)
		if t.Method.Alg() != s.keys["joe"].Algorithm {
			return nil, signature.ErrInvalid
		}
		return s.keys["joe"].Verify, nil
	})
	return claims, err
}

func TestRFC7515A1(t *testing.T) {
	before := time.Unix(rfc7515A1Exp, 0).Add(-time.Minute)
	claims, err := verifyA1(rfc7515A1Scheme(t, before), rfc7515A1Token)
	require.NoError(t, err, "the RFC 7515 A.1 HS256 example verifies with its JWK")
	assert.Equal(t, "joe", claims["iss"])
	assert.Equal(t, true, claims["http://example.com/is_root"])

	_, err = verifyA1(rfc7515A1Scheme(t, time.Unix(rfc7515A1Exp, 0).Add(DefaultLeeway)), rfc7515A1Token)
	assert.ErrorIs(t, err, timestamp.ErrExpired, "past exp and the leeway")

	tampered := rfc7515A1Token[:len(rfc7515A1Token)-2] + "Xk"
	if tampered == rfc7515A1Token {
		tampered = rfc7515A1Token[:len(rfc7515A1Token)-2] + "Yk"
	}
	_, err = verifyA1(rfc7515A1Scheme(t, before), tampered)
	assert.ErrorIs(t, err, signature.ErrInvalid)

	// Through the scheme the example is refused for what it lacks: it names
	// no kid (the jwt wire format (docs/wire-format.md): signature_missing).
	r := &signature.Request{Method: http.MethodGet, Scheme: "https", Host: "example.com", Target: "/", Header: http.Header{}}
	r.Header.Set("Authorization", "Bearer "+rfc7515A1Token)
	_, err = rfc7515A1Scheme(t, before).Verify(context.Background(), r)
	assert.ErrorIs(t, err, signature.ErrMissing)
	assert.Contains(t, err.Error(), "kid")
}

// RFC 9449 examples: the proof of §4.1 (Figure 2/3, token request), the
// proof of §7.1 (Figures 13/14, resource request with ath), the jkt of §6.1
// (Figure 9) and the access token of §7.1.
const (
	rfc9449Header = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19"

	rfc9449TokenRequestProof = rfc9449Header +
		".eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ" +
		".2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg"

	rfc9449ResourceProof = rfc9449Header +
		".eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIjoiR0VUIiwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0ZWRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNFc05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9" +
		".2oW9RP35yRqzhrtNP86L-Ey71EOptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA"

	rfc9449JKT         = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	rfc9449AccessToken = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
	rfc9449ATH         = "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
)

func TestRFC9449Examples(t *testing.T) {
	assert.Equal(t, rfc9449ATH, AccessTokenHash(rfc9449AccessToken), "ath of §7.1")

	jk, err := signature.ParseJWK(map[string]any{
		"kty": "EC", "crv": "P-256",
		"x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs", "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
	})
	require.NoError(t, err)
	jkt, err := signature.JWKThumbprint(jk.Key)
	require.NoError(t, err)
	assert.Equal(t, rfc9449JKT, jkt, "jkt of §6.1")

	s, err := New([]signature.Key{{ID: "as", Secrets: [][]byte{[]byte("0123456789abcdef0123456789abcdef")}}}, WithDPoP(true))
	require.NoError(t, err)
	tests := []struct {
		name   string
		proof  string
		req    *signature.Request
		jti    string
		iat    int64
		ath    string
		bindTo binding
	}{
		{"token request (§4.1)", rfc9449TokenRequestProof,
			&signature.Request{Method: http.MethodPost, Scheme: "https", Host: "server.example.com", Target: "/token"},
			"-BwC3ESc6acc2lTc", 1562262616, "", bindHTM | bindHTU},
		{"resource request (§7.1)", rfc9449ResourceProof,
			&signature.Request{Method: http.MethodGet, Scheme: "https", Host: "resource.example.org", Target: "/protectedresource"},
			"e1j3V_bKic8-LAEB", 1562262618, rfc9449ATH, bindHTM | bindHTU},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &call{s: s}
			var cl tokenClaims
			require.NoError(t, c.parseProof(tt.proof, &cl))
			assert.Equal(t, rfc9449JKT, c.jkt)
			assert.Equal(t, tt.jti, cl.ID)
			assert.Equal(t, tt.iat, cl.IssuedAt.Unix())
			assert.Equal(t, tt.ath, cl.ATH)
			require.NoError(t, checkBinding(&cl, tt.req, tt.bindTo, "dpop"))

			other := *tt.req
			other.Method = http.MethodPut
			assert.ErrorIs(t, checkBinding(&cl, &other, tt.bindTo, "dpop"), signature.ErrInvalid)
			other = *tt.req
			other.Target += "2"
			assert.ErrorIs(t, checkBinding(&cl, &other, tt.bindTo, "dpop"), signature.ErrInvalid)

			parts := strings.Split(tt.proof, ".")
			forged := parts[0] + "." + strings.Split(tests[0].proof, ".")[1] + "." + parts[2]
			if forged != tt.proof {
				assert.ErrorIs(t, (&call{s: s}).parseProof(forged, &tokenClaims{}), signature.ErrInvalid)
			}
		})
	}
}
