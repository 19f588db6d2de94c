package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"

	"github.com/google/uuid"

	"github.com/replayguard/replayguard/config"
	"github.com/replayguard/replayguard/signature/hmacsig"
)

const (
	hotKeyID  = "hot-client"
	hotSecret = "hot-secret-0123456789abcdef"
)

// hotWriter is a ResponseWriter that costs nothing, so that only the
// handler's own work is measured.
type hotWriter struct{ h http.Header }

func (w *hotWriter) Header() http.Header         { return w.h }
func (w *hotWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *hotWriter) WriteHeader(int)             {}

// hotGateway is the gateway of a configuration with memory stores in
// front of upstream, access lines as access says.
func hotGateway(tb testing.TB, upstream string, access bool, extra string) *gateway {
	tb.Helper()
	cfg, err := config.Parse(fmt.Appendf(nil, `upstream: %s
keys:
  - id: %s
    secrets: [%q]
nonce: {store: memory}
idempotency: {store: memory, memory_max_bytes: 4294967296}
log: {access: %t}
%s`, upstream, hotKeyID, hotSecret, access, extra), nil)
	if err != nil {
		tb.Fatal(err)
	}
	gw, err := newLive(slog.New(slog.NewJSONHandler(io.Discard, nil)), "").open(context.Background(), cfg, nil, false)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = gw.set.Close() })
	return gw
}

// hotRequests are n requests as a server hands them to its handler:
// signed, POST with body and a fresh Idempotency-Key, or GET without.
func hotRequests(tb testing.TB, method string, body []byte, n int) []*http.Request {
	tb.Helper()
	s := &hmacsig.Signer{KeyID: hotKeyID, Secret: []byte(hotSecret)}
	out := make([]*http.Request, n)
	for i := range out {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		r := httptest.NewRequest(method, "http://api.example.com/v1/charges", rd)
		if method == http.MethodPost {
			r.Header.Set("Idempotency-Key", uuid.NewString())
		}
		if err := s.Sign(r, body); err != nil {
			tb.Fatal(err)
		}
		out[i] = r
	}
	return out
}

// BenchmarkProxy serves signed requests through the binary's reverse
// proxy (memory stores) to a loopback upstream, beside a bare
// httputil.ReverseProxy built as bench/cmd/bareproxy builds it: what the
// gateway adds is the difference (exactly so in allocations).
func BenchmarkProxy(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}` + "\n"))
	}))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 512
	bareProxy := &httputil.ReverseProxy{Transport: tr, BufferPool: copyBuffers, Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(u)
		pr.SetXForwarded()
		pr.Out.Host = pr.In.Host
	}}
	for _, m := range []struct {
		method string
		body   []byte
	}{{http.MethodPost, make([]byte, 1024)}, {http.MethodGet, nil}} {
		for _, v := range []struct {
			name string
			h    func(b *testing.B) http.Handler
		}{
			{"bare", func(*testing.B) http.Handler { return bareProxy }},
			{"gateway", func(b *testing.B) http.Handler { return hotGateway(b, up.URL, false, "").proxy }},
			{"gateway-access", func(b *testing.B) http.Handler { return hotGateway(b, up.URL, true, "").proxy }},
		} {
			b.Run(m.method+"/"+v.name, func(b *testing.B) {
				h := v.h(b)
				w := &hotWriter{h: http.Header{}}
				b.ReportAllocs()
				b.StopTimer()
				for done := 0; done < b.N; {
					reqs := hotRequests(b, m.method, m.body, min(512, b.N-done))
					b.StartTimer()
					for _, r := range reqs {
						clear(w.h)
						h.ServeHTTP(w, r)
					}
					b.StopTimer()
					done += len(reqs)
				}
			})
		}
	}
}
