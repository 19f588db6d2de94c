package idempotency_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/idempotency"
)

func serveOnce(t *testing.T, h *idempotency.Deduper, ctx context.Context, next http.Handler) (*httptest.ResponseRecorder, error) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/v1/x", strings.NewReader("b")).WithContext(ctx)
	r.Header.Set(idempotency.HeaderName, "k-1")
	w := httptest.NewRecorder()
	err := h.Serve(w, r, idempotency.Request{Principal: "p", Target: "/v1/x", Body: []byte("b")}, next)
	return w, err
}

func TestHeadersOnlyResponseIsReplayedWithItsHeaders(t *testing.T) {
	h := idempotency.NewDeduper(idempotency.NewMemory(), idempotency.Options{Required: true})
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Location", "/v1/charges/ch_1")
		w.Header().Set("X-Foo", "1")
	})
	_, err := serveOnce(t, h, context.Background(), next)
	require.NoError(t, err)
	w, err := serveOnce(t, h, context.Background(), next)
	require.NoError(t, err)
	assert.Equal(t, 200, w.Code)
	assert.Equal(t, "/v1/charges/ch_1", w.Header().Get("Location"))
	assert.Equal(t, "1", w.Header().Get("X-Foo"))
	assert.Equal(t, "true", w.Header().Get(idempotency.ReplayedHeader))
}

func TestHijackedResponseIsReleased(t *testing.T) {
	h := idempotency.NewDeduper(idempotency.NewMemory(), idempotency.Options{Required: true})
	var runs atomic.Int64
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		runs.Add(1)
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 201 Created\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
		_ = buf.Flush()
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		_ = h.Serve(w, r, idempotency.Request{Principal: "p", Target: r.URL.RequestURI(), Body: body}, next)
	}))
	defer srv.Close()
	send := func() (int, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/x", strings.NewReader("b"))
		req.Header.Set(idempotency.HeaderName, "hijack-key")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	status, body := send()
	assert.Equal(t, 201, status)
	assert.Equal(t, "hi", body)
	// The hijacked connection delivers the whole response before the
	// handler returns and the key is released: a retry sent at once may
	// still find it in progress (409, nothing run), never stored.
	var retried bool
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		status, body = send()
		if status != http.StatusConflict {
			retried = true
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	require.True(t, retried, "the key was never released")
	assert.Equal(t, 201, status)
	assert.Equal(t, "hi", body)
	assert.Equal(t, int64(2), runs.Load(), "not stored: the retry runs again")
}

func TestTinyLeaseDoesNotCrash(t *testing.T) {
	r := idempotency.NewRunner(idempotency.NewMemory(), idempotency.WithLease(0), idempotency.WithPollInterval(0))
	res, err := r.Do(context.Background(), "k", func(context.Context) ([]byte, error) { return []byte("v"), nil })
	require.NoError(t, err)
	assert.Equal(t, "v", string(res.Value))
	h := idempotency.NewDeduper(idempotency.NewMemory(), idempotency.Options{Required: true, Lease: time.Nanosecond})
	_, err = serveOnce(t, h, context.Background(), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(5 * time.Millisecond)
	}))
	require.NoError(t, err)
}

func TestCanceledClientIsNotAStoreFailure(t *testing.T) {
	h := idempotency.NewDeduper(idempotency.NewMemory(), idempotency.Options{Required: true, FailOpen: true})
	var runs atomic.Int64
	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { runs.Add(1) })
	_, err := serveOnce(t, h, context.Background(), next)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = serveOnce(t, h, ctx, next)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, int64(1), runs.Load(), "a gone client never runs the operation again")
	assert.Zero(t, h.Stats().FailOpenPasses.Load())
	assert.Zero(t, h.Stats().StoreErrors.Load())
}

type noFlush struct{ http.ResponseWriter }

func TestFlushReportsNotSupported(t *testing.T) {
	h := idempotency.NewDeduper(idempotency.NewMemory(), idempotency.Options{Required: true})
	var flushErr error
	r := httptest.NewRequest(http.MethodPost, "/v1/x", strings.NewReader("b"))
	r.Header.Set(idempotency.HeaderName, "k-flush")
	w := noFlush{httptest.NewRecorder()}
	err := h.Serve(w, r, idempotency.Request{Principal: "p", Target: "/v1/x", Body: []byte("b")}, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		flushErr = http.NewResponseController(w).Flush()
	}))
	require.NoError(t, err)
	assert.ErrorIs(t, flushErr, http.ErrNotSupported)
}
