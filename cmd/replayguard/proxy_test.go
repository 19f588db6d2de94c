package main

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// countingWriter is a ResponseWriter that keeps only the status and how
// many body bytes it got.
type countingWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *countingWriter) Header() http.Header         { return w.h }
func (w *countingWriter) WriteHeader(code int)        { w.status = code }
func (w *countingWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// The proxy copies response bodies through pooled buffers: a body larger
// than one buffer arrives whole, and a proxied response allocates less
// than the 32 KiB copy buffer an unpooled proxy makes for each.
func TestProxyCopiesThroughPooledBuffers(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 5000) // 80,000 bytes: three buffers' worth
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) }))
	t.Cleanup(up.Close)
	p, err := newProxy(up.URL, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	serve := func() {
		w := &countingWriter{h: http.Header{}}
		r := httptest.NewRequest(http.MethodGet, "/x", nil)
		p.ServeHTTP(w, r)
		require.Equal(t, http.StatusOK, w.status)
		require.Equal(t, len(body), w.n)
	}
	for range 5 {
		serve()
	}
	const runs = 50
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		serve()
	}
	runtime.ReadMemStats(&after)
	perResponse := (after.TotalAlloc - before.TotalAlloc) / runs
	assert.Less(t, perResponse, uint64(copyBufferBytes), "bytes allocated per proxied response")
}
