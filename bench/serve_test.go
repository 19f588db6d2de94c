package bench

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/replayguard/replayguard/signature/hmacsig"
)

// serveLoopback starts a real net/http server on loopback with h.
func serveLoopback(b *testing.B, h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// runHTTP sends b.N freshly signed requests over one keep-alive connection.
func runHTTP(b *testing.B, h http.Handler, body []byte) {
	base := serveLoopback(b, h)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	s := &hmacsig.Signer{KeyID: benchKeyID, Secret: []byte(benchSecret)}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.StopTimer()
	for done := 0; done < b.N; {
		n := min(batch, b.N-done)
		reqs := make([]*http.Request, n)
		for i := range reqs {
			r, err := http.NewRequest(http.MethodPost, base+"/v1/charges?x=1", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Sign(r, body); err != nil {
				b.Fatal(err)
			}
			reqs[i] = r
		}
		b.StartTimer()
		for _, r := range reqs {
			resp, err := client.Do(r)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
		b.StopTimer()
		done += n
	}
}

// BenchmarkServeBare is a bare handler behind a real net/http server on
// loopback: the baseline of the "≤ 2.0× bare handler" goal.
func BenchmarkServeBare(b *testing.B) {
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) { runHTTP(b, bare, make([]byte, sz.n)) })
	}
}

// BenchmarkServeMiddleware is the same server with the pipeline in front.
func BenchmarkServeMiddleware(b *testing.B) {
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) { runHTTP(b, newGuard(b).Middleware(bare), make([]byte, sz.n)) })
	}
}
