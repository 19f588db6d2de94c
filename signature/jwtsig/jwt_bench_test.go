package jwtsig_test

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/replayguard/replayguard/signature/jwtsig"
)

// BenchmarkJWTVerify compares the jwt scheme with a bare jwt.Parse of the
// same token, in the same run.
func BenchmarkJWTVerify(b *testing.B) {
	s := newJWTScheme(b)
	for _, alg := range []string{"ES256", "EdDSA", "HS256"} {
		sg := jwtSigners(b)[alg]
		r := jwtRequest()
		tok := mintJWT(b, sg, jwtClaimsFor(r), nil)
		withBearer(r, tok)
		pub := schemeKey(b, sg.kid)
		b.Run(alg+"/scheme", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Verify(context.Background(), r); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg+"/jwt.Parse", func(b *testing.B) {
			b.ReportAllocs()
			keyFunc := func(*jwt.Token) (any, error) { return pub, nil }
			for b.Loop() {
				if _, err := jwt.Parse(tok, keyFunc, jwt.WithValidMethods([]string{alg}), jwt.WithTimeFunc(jwtFixedClock)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func schemeKey(b *testing.B, kid string) any {
	for _, k := range jwtSchemeKeys(b) {
		if k.ID == kid {
			if k.PublicKey != nil {
				return k.PublicKey
			}
			return k.Secrets[0]
		}
	}
	b.Fatalf("no key %q", kid)
	return nil
}

// garbageTokens are 64 KiB tokens no key signed: random bytes, three
// base64url segments, and dots only (the CVE-2025-30204 shape).
func garbageTokens(b *testing.B) map[string]string {
	const size = 64 << 10
	raw := make([]byte, size)
	if _, err := rand.Read(raw); err != nil {
		b.Fatal(err)
	}
	for i, c := range raw {
		if c < 0x21 || c > 0x7e {
			raw[i] = '!'
		}
	}
	seg := strings.Repeat("eyJhbGciOiJFUzI1NiJ9", size/3/20)
	return map[string]string{
		"random":    string(raw),
		"base64url": (seg + "." + seg + "." + seg + strings.Repeat("A", size))[:size],
		"dots":      strings.Repeat(".", size),
	}
}

// BenchmarkJWTGarbage64KiB rejects 64 KiB garbage tokens, with the default
// size limit and with the limit lifted above 64 KiB so that the token
// reaches the parser; -benchmem shows the bytes allocated per rejection.
func BenchmarkJWTGarbage64KiB(b *testing.B) {
	limits := map[string]*jwtsig.Scheme{
		"default-limit": newJWTScheme(b),
		"no-limit":      newJWTScheme(b, jwtsig.WithMaxTokenBytes(1<<20)),
	}
	for _, limit := range []string{"default-limit", "no-limit"} {
		s := limits[limit]
		for _, kind := range []string{"random", "base64url", "dots"} {
			r := jwtRequest()
			r.Header.Set("Authorization", "Bearer "+garbageTokens(b)[kind])
			b.Run(limit+"/"+kind, func(b *testing.B) {
				b.SetBytes(64 << 10)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := s.Verify(context.Background(), r); err == nil {
						b.Fatal("garbage accepted")
					}
				}
			})
		}
	}
}
