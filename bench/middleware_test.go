package bench

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/signature/hmacsig"
)

var sizes = []struct {
	name string
	n    int
}{{"1KiB", 1 << 10}, {"64KiB", 64 << 10}}

const (
	benchKeyID  = "bench-client"
	benchSecret = "bench-secret-0123456789abcdef"
	batch       = 1024
)

// discard is a minimal ResponseWriter so the writer costs nothing in any
// variant.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}

// bare is the handler every variant ends in: it reads the body and answers.
var bare = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.WriteHeader(http.StatusOK)
})

// requests builds n signed requests over body, each with a fresh nonce, the
// way a server would receive them.
func requests(b *testing.B, body []byte, n int) []*http.Request {
	s := &hmacsig.Signer{KeyID: benchKeyID, Secret: []byte(benchSecret)}
	out := make([]*http.Request, n)
	for i := range out {
		r, err := http.NewRequest(http.MethodPost, "http://api.example.com/v1/charges?x=1", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Sign(r, body); err != nil {
			b.Fatal(err)
		}
		r.RequestURI = "/v1/charges?x=1"
		out[i] = r
	}
	return out
}

// run serves b.N freshly signed requests through h, building them in
// batches outside the timer.
func run(b *testing.B, h http.Handler, body []byte) {
	w := &discard{h: http.Header{}}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.StopTimer()
	for done := 0; done < b.N; {
		n := min(batch, b.N-done)
		reqs := requests(b, body, n)
		b.StartTimer()
		for _, r := range reqs {
			h.ServeHTTP(w, r)
		}
		b.StopTimer()
		done += n
	}
}

func newGuard(b *testing.B) *replayguard.Guard {
	g, err := replayguard.New(replayguard.Config{
		Keys:        []replayguard.KeyConfig{{ID: benchKeyID, Secrets: []string{benchSecret}}},
		Timestamp:   replayguard.TimestampConfig{Tolerance: replayguard.Duration(time.Hour), FutureSkew: replayguard.Duration(time.Hour)},
		Idempotency: replayguard.IdempotencyConfig{Enabled: new(bool)},
	})
	if err != nil {
		b.Fatal(err)
	}
	return g
}

// BenchmarkBare is the bare handler alone. It needs no fresh signatures,
// so one batch of requests is served again and again, each body rewound
// outside the timer: building a signed request costs far more than the
// handler, and at tens of millions of operations a fresh batch per batch
// made this benchmark take longer than all the others together.
func BenchmarkBare(b *testing.B) {
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			body := make([]byte, sz.n)
			reqs := requests(b, body, batch)
			bodies := make([]*bytes.Reader, len(reqs))
			for i, r := range reqs {
				bodies[i] = bytes.NewReader(body)
				r.Body = io.NopCloser(bodies[i])
			}
			w := &discard{h: http.Header{}}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			b.StopTimer()
			for done := 0; done < b.N; {
				n := min(batch, b.N-done)
				for _, rd := range bodies[:n] {
					rd.Reset(body)
				}
				b.StartTimer()
				for _, r := range reqs[:n] {
					bare.ServeHTTP(w, r)
				}
				b.StopTimer()
				done += n
			}
		})
	}
}

// BenchmarkFloor is the least any HMAC-SHA256 verifier in front of the bare
// handler does: HMAC the whole body once, compare, then serve.
func BenchmarkFloor(b *testing.B) {
	key := []byte(benchSecret)
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			floor := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body := make([]byte, r.ContentLength)
				_, _ = io.ReadFull(r.Body, body)
				r.Body = io.NopCloser(bytes.NewReader(body))
				m := hmac.New(sha256.New, key)
				m.Write(body)
				if hmac.Equal(m.Sum(nil), make([]byte, 32)) {
					panic("unreachable")
				}
				bare.ServeHTTP(w, r)
			})
			run(b, floor, make([]byte, sz.n))
		})
	}
}

// BenchmarkMiddleware is the whole pipeline (body limit, hmac scheme,
// window, exact in-memory nonce store) in front of the bare handler.
func BenchmarkMiddleware(b *testing.B) {
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) { run(b, newGuard(b).Middleware(bare), make([]byte, sz.n)) })
	}
}

// BenchmarkHMACSHA256 is HMAC-SHA256 alone over the body, for reference.
func BenchmarkHMACSHA256(b *testing.B) {
	key := []byte(benchSecret)
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			body := make([]byte, sz.n)
			b.SetBytes(int64(sz.n))
			b.ReportAllocs()
			for b.Loop() {
				m := hmac.New(sha256.New, key)
				m.Write(body)
				_ = m.Sum(nil)
			}
		})
	}
}

// TestMiddlewareAcceptsBenchRequests keeps the benchmark honest: the
// requests it times are accepted, and a replay is rejected.
func TestMiddlewareAcceptsBenchRequests(t *testing.T) {
	b := &testing.B{}
	g := newGuard(b)
	status := 0
	h := g.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status = 200
		bare.ServeHTTP(w, r)
	}))
	body := []byte("x")
	reqs := requests(b, body, 2)
	for i, r := range reqs {
		status = 0
		w := &recorder{discard: discard{h: http.Header{}}}
		h.ServeHTTP(w, r)
		if status != 200 {
			t.Fatalf("request %d rejected: %d", i, w.code)
		}
	}
	replay := reqs[0].Clone(reqs[0].Context())
	replay.Body = io.NopCloser(bytes.NewReader(body))
	w := &recorder{discard: discard{h: http.Header{}}}
	h.ServeHTTP(w, replay)
	if w.code != 401 {
		t.Fatalf("replay answered %d, want 401", w.code)
	}
}

type recorder struct {
	discard
	code int
}

func (r *recorder) WriteHeader(c int) { r.code = c }
