package bench

import (
	"crypto/hmac"
	"crypto/sha256"
	"io"
	"net/http"
	"testing"
	"time"
)

// BenchmarkMiddlewareVsFloorPaired alternates batches of the middleware and
// of the HMAC-SHA256 floor inside one benchmark, so that load from other
// processes hits both alike, and reports middleware time / floor time as
// the metric "x-floor" (ns/op is the middleware's).
func BenchmarkMiddlewareVsFloorPaired(b *testing.B) {
	key := []byte(benchSecret)
	floor := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := make([]byte, r.ContentLength)
		_, _ = io.ReadFull(r.Body, body)
		m := hmac.New(sha256.New, key)
		m.Write(body)
		if hmac.Equal(m.Sum(nil), make([]byte, 32)) {
			panic("unreachable")
		}
		bare.ServeHTTP(w, r)
	})
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			mw := newGuard(b).Middleware(bare)
			body := make([]byte, sz.n)
			w := &discard{h: http.Header{}}
			const pair = 64
			var tMW, tFloor time.Duration
			b.SetBytes(int64(sz.n))
			b.ReportAllocs()
			b.StopTimer()
			for done := 0; done < b.N; done += pair {
				a := requests(b, body, pair)
				f := requests(b, body, pair)
				b.StartTimer()
				start := time.Now()
				for _, r := range a {
					mw.ServeHTTP(w, r)
				}
				tMW += time.Since(start)
				b.StopTimer()
				start = time.Now()
				for _, r := range f {
					floor.ServeHTTP(w, r)
				}
				tFloor += time.Since(start)
			}
			b.ReportMetric(float64(tMW)/float64(tFloor), "x-floor")
		})
	}
}
