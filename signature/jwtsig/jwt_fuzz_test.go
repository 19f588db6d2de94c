package jwtsig_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/jwtsig"
)

// FuzzJWTVerify feeds arbitrary Authorization and DPoP values to the jwt
// scheme (DPoP on). Whatever the input, Verify must not panic, must reject
// with exactly one category of the problem map, and may accept only a
// token that verifies with a configured key.
func FuzzJWTVerify(f *testing.F) {
	s := newJWTScheme(f, jwtsig.WithDPoP(true))
	sg := jwtSigners(f)
	r := jwtRequest()
	valid := mintJWT(f, sg["ES256"], jwtClaimsFor(r), nil)
	client := newDPoPClient(f)
	bound := dpopAccessToken(f, client.jkt(f), nil)
	proof := client.proof(f, dpopProofClaims(r, bound), nil)
	seeds := [][2]string{
		{"Bearer " + valid, ""},
		{"Bearer " + mintJWT(f, sg["EdDSA"], jwtClaimsFor(r), nil), ""},
		{"Bearer " + mintJWT(f, sg["HS256"], jwtClaimsFor(r), nil), ""},
		{"DPoP " + bound, proof},
		{"DPoP " + bound, proof + "x"},
		{"Bearer " + valid[:len(valid)/2], ""},
		{"Bearer eyJhbGciOiJub25lIn0.eyJqdGkiOiJ4In0.", ""},
		{"Bearer " + strings.Repeat(".", 100), ""},
		{"Bearer a.b.c", "a.b.c"},
		{"bearer    " + valid, ""},
		{"DPoP " + bound, ""},
		{"", ""},
	}
	for _, sd := range seeds {
		f.Add(sd[0], sd[1])
	}
	f.Fuzz(func(t *testing.T, auth, dpop string) {
		r := jwtRequest()
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		if dpop != "" {
			r.Header.Set("DPoP", dpop)
		}
		v, err := s.Verify(context.Background(), r)
		if err != nil {
			requireOneCategory(t, err)
			require.Equal(t, signature.Verified{}, v)
			return
		}
		require.NotEmpty(t, v.KeyID)
		require.NotEmpty(t, v.ReplayKey)
		require.LessOrEqual(t, len(v.ReplayKey), jwtsig.MaxJTIBytes)
		require.False(t, v.Timestamp.IsZero())
	})
}
