package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/jwtsig"
)

// jwtNow is the fixed clock of both sides, so that the same token verifies
// on every iteration.
var jwtNow = time.Unix(1_760_000_000, 0)

func jwtClock() time.Time { return jwtNow }

// jwtCase is one algorithm: the scheme's key and the key signing for it.
type jwtCase struct {
	alg    string
	method jwt.SigningMethod
	sign   any
	verify any
}

func jwtCases(b *testing.B) []jwtCase {
	es, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	edPub, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	secret := []byte("bench-jwt-secret-0123456789abcdef")
	return []jwtCase{
		{"ES256", jwt.SigningMethodES256, es, &es.PublicKey},
		{"EdDSA", jwt.SigningMethodEdDSA, ed, edPub},
		{"HS256", jwt.SigningMethodHS256, secret, secret},
	}
}

// jwtBenchRequest is a 1 KiB POST bound by a token signed with c.
func jwtBenchRequest(b *testing.B, c jwtCase) (*signature.Request, string) {
	body := []byte(strings.Repeat("x", 1<<10))
	r := &signature.Request{
		Method: http.MethodPost, Scheme: "https", Host: "api.example.com",
		Target: "/v1/charges?currency=eur", Header: http.Header{}, Body: body,
	}
	tok := jwt.NewWithClaims(c.method, jwt.MapClaims{
		"jti": "3f8e2b1c-6a4d-4e5f-9b7a-1c2d3e4f5a6b", "iat": jwtNow.Unix(), "exp": jwtNow.Add(5 * time.Minute).Unix(),
		"sub": "bench", "htm": r.Method, "htu": "https://api.example.com/v1/charges", "bsh": jwtsig.BodyHash(body),
	})
	tok.Header["kid"] = c.alg
	raw, err := tok.SignedString(c.sign)
	if err != nil {
		b.Fatal(err)
	}
	r.Header.Set("Authorization", "Bearer "+raw)
	return r, raw
}

// BenchmarkJWT compares the jwt scheme (token parsing, signature, exp,
// request binding, jti and iat extraction) with a bare jwt.Parse of the
// same token with the same key, in the same run.
func BenchmarkJWT(b *testing.B) {
	for _, c := range jwtCases(b) {
		s, err := jwtsig.New([]signature.Key{jwtKey(c)}, jwtsig.WithClock(jwtClock))
		if err != nil {
			b.Fatal(err)
		}
		r, raw := jwtBenchRequest(b, c)
		if _, err := s.Verify(context.Background(), r); err != nil {
			b.Fatal(err)
		}
		b.Run(c.alg+"/scheme", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Verify(context.Background(), r); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.alg+"/jwt.Parse", func(b *testing.B) {
			b.ReportAllocs()
			keyFunc := func(*jwt.Token) (any, error) { return c.verify, nil }
			for b.Loop() {
				if _, err := jwt.Parse(raw, keyFunc, jwt.WithValidMethods([]string{c.alg}), jwt.WithTimeFunc(jwtClock)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkJWTPaired runs the scheme and the bare jwt.Parse alternately in
// one loop, timing each call, so that both see the same machine load: on a
// shared machine the separate benchmarks drift apart by more than the 5 %
// the goal allows. It reports both means and the median of the per-pair
// ratios, which a preempted call does not move.
func BenchmarkJWTPaired(b *testing.B) {
	for _, c := range jwtCases(b) {
		s, err := jwtsig.New([]signature.Key{jwtKey(c)}, jwtsig.WithClock(jwtClock))
		if err != nil {
			b.Fatal(err)
		}
		r, raw := jwtBenchRequest(b, c)
		keyFunc := func(*jwt.Token) (any, error) { return c.verify, nil }
		scheme := func() {
			if _, err := s.Verify(context.Background(), r); err != nil {
				b.Fatal(err)
			}
		}
		bare := func() {
			if _, err := jwt.Parse(raw, keyFunc, jwt.WithValidMethods([]string{c.alg}), jwt.WithTimeFunc(jwtClock)); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(c.alg, func(b *testing.B) {
			var inScheme, inBare time.Duration
			ratios := make([]float64, 0, 1<<16)
			n := 0
			for b.Loop() {
				var ds, dp time.Duration
				if n%2 == 0 {
					t0 := time.Now()
					scheme()
					t1 := time.Now()
					bare()
					ds, dp = t1.Sub(t0), time.Since(t1)
				} else {
					t0 := time.Now()
					bare()
					t1 := time.Now()
					scheme()
					dp, ds = t1.Sub(t0), time.Since(t1)
				}
				inScheme += ds
				inBare += dp
				ratios = append(ratios, float64(ds)/float64(dp))
				n++
			}
			sort.Float64s(ratios)
			b.ReportMetric(float64(inScheme.Nanoseconds())/float64(n), "scheme-ns/op")
			b.ReportMetric(float64(inBare.Nanoseconds())/float64(n), "parse-ns/op")
			b.ReportMetric(ratios[len(ratios)/2], "scheme/parse")
		})
	}
}

func jwtKey(c jwtCase) signature.Key {
	if secret, ok := c.verify.([]byte); ok {
		return signature.Key{ID: c.alg, Secrets: [][]byte{secret}}
	}
	return signature.Key{ID: c.alg, PublicKey: c.verify}
}

// BenchmarkJWTGarbage rejects a 64 KiB garbage token: three base64url
// segments that reach the JWT parser when the size limit is lifted, and the
// same token under the default 8 KiB limit. B/op is the allocation per
// rejection.
func BenchmarkJWTGarbage(b *testing.B) {
	const size = 64 << 10
	seg := strings.Repeat("eyJhbGciOiJFUzI1NiJ9", size/3/20)
	garbage := (seg + "." + seg + "." + seg + strings.Repeat("A", size))[:size]
	c := jwtCases(b)[0]
	for _, limit := range []struct {
		name string
		max  int
	}{{"64KiB/no-limit", 1 << 20}, {"64KiB/default-limit", 0}} {
		s, err := jwtsig.New([]signature.Key{jwtKey(c)}, jwtsig.WithClock(jwtClock), jwtsig.WithMaxTokenBytes(limit.max))
		if err != nil {
			b.Fatal(err)
		}
		r, _ := jwtBenchRequest(b, c)
		r.Header.Set("Authorization", "Bearer "+garbage)
		b.Run(limit.name, func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Verify(context.Background(), r); err == nil {
					b.Fatal("garbage accepted")
				}
			}
		})
	}
}
