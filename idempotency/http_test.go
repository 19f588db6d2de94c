package idempotency_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/idempotency"
)

// upstream counts its executions and answers with fn (default: 201 with a
// JSON body and a few headers).
type upstream struct {
	calls atomic.Int64
	fn    http.HandlerFunc
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := u.calls.Add(1)
	if u.fn != nil {
		u.fn(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", "/v1/charges/ch_"+strconv.FormatInt(n, 10))
	w.Header()["X-Multi"] = []string{"1", "2"}
	w.WriteHeader(http.StatusCreated)
	_, _ = fmt.Fprintf(w, `{"id":"ch_%d"}`, n)
}

func statusUpstream(status int) *upstream {
	return &upstream{fn: func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(http.StatusText(status)))
	}}
}

// call is one request through Handler.Serve.
type call struct {
	principal string
	method    string
	target    string
	key       string // Idempotency-Key header; "" sends none
	body      string
	header    http.Header
	optional  bool // Request.Optional
}

func (c call) with(f func(*call)) call {
	f(&c)
	return c
}

func (c call) do(h *idempotency.Deduper, next http.Handler) (*httptest.ResponseRecorder, error) {
	method := c.method
	if method == "" {
		method = http.MethodPost
	}
	target := c.target
	if target == "" {
		target = "/v1/charges"
	}
	principal := c.principal
	if principal == "" {
		principal = "client-a"
	}
	r := httptest.NewRequest(method, target, strings.NewReader(c.body))
	for k, vs := range c.header {
		r.Header[k] = vs
	}
	if c.key != "" {
		r.Header.Set(idempotency.HeaderName, c.key)
	}
	w := httptest.NewRecorder()
	err := h.Serve(w, r, idempotency.Request{Principal: principal, Target: r.URL.RequestURI(), Body: []byte(c.body), Optional: c.optional}, next)
	return w, err
}

var charge = call{key: "key-1", body: `{"amount":100}`}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newHandler(store idempotency.Store, opts idempotency.Options) *idempotency.Deduper {
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	return idempotency.NewDeduper(store, opts)
}

func replayed(w *httptest.ResponseRecorder) bool {
	return w.Header().Get(idempotency.ReplayedHeader) == "true"
}

// storedRecord reads the record under principal/key without disturbing it.
func storedRecord(t *testing.T, s *idempotency.Memory, principal, key string) *idempotency.Record {
	t.Helper()
	c, err := s.Claim(context.Background(), idempotency.ScopedKey(principal, key), idempotency.Fingerprint{}, time.Minute)
	require.NoError(t, err)
	require.False(t, c.Acquired, "no record under %q", key)
	return c.Existing
}

type counts struct{ Executed, Replayed, InProgress, Reused, Released, StoreErrors, FailOpenPasses uint64 }

func statsOf(h *idempotency.Deduper) counts {
	s := h.Stats()
	return counts{s.Executed.Load(), s.Replayed.Load(), s.InProgress.Load(), s.Reused.Load(), s.Released.Load(), s.StoreErrors.Load(), s.FailOpenPasses.Load()}
}

func TestServeReplaysStoredResponse(t *testing.T) {
	h := newHandler(idempotency.NewMemory(), idempotency.Options{Required: true})
	up := &upstream{}

	first, err := charge.do(h, up)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, first.Code)
	assert.Equal(t, `{"id":"ch_1"}`, first.Body.String())
	assert.False(t, replayed(first))

	for _, key := range []string{"key-1", `"key-1"`} {
		retry, err := charge.with(func(c *call) { c.key = key }).do(h, up)
		require.NoError(t, err)
		assert.Equal(t, first.Code, retry.Code)
		assert.Equal(t, first.Body.Bytes(), retry.Body.Bytes())
		assert.Equal(t, "true", retry.Header().Get(idempotency.ReplayedHeader))
		want := first.Header().Clone()
		want.Set(idempotency.ReplayedHeader, "true")
		assert.Equal(t, want, retry.Header())
	}
	assert.EqualValues(t, 1, up.calls.Load())
	assert.Equal(t, counts{Executed: 1, Replayed: 2}, statsOf(h))
}

func TestServeExplicitKey(t *testing.T) {
	h := newHandler(idempotency.NewMemory(), idempotency.Options{Required: true})
	up := &upstream{}
	serve := func() (*httptest.ResponseRecorder, error) {
		r := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader("{}"))
		w := httptest.NewRecorder()
		return w, h.Serve(w, r, idempotency.Request{Principal: "github", Key: "delivery-1", Target: "/hook", Body: []byte("{}")}, up)
	}
	_, err := serve()
	require.NoError(t, err)
	w, err := serve()
	require.NoError(t, err)
	assert.True(t, replayed(w))
	assert.EqualValues(t, 1, up.calls.Load())
}

func TestServeKeyReused(t *testing.T) {
	tests := []struct {
		name  string
		retry call
	}{
		{"other body", charge.with(func(c *call) { c.body = `{"amount":200}` })},
		{"empty body", charge.with(func(c *call) { c.body = "" })},
		{"other target", charge.with(func(c *call) { c.target = "/v1/refunds" })},
		{"other query", charge.with(func(c *call) { c.target = "/v1/charges?dry_run=1" })},
		{"other method", charge.with(func(c *call) { c.method = http.MethodPatch })},
		{"configured header differs", charge.with(func(c *call) { c.header = http.Header{"X-Account": {"acct_2"}} })},
		{"configured header absent", charge.with(func(c *call) { c.header = nil })},
	}
	first := charge.with(func(c *call) { c.header = http.Header{"X-Account": {"acct_1"}, "X-Trace": {"t1"}} })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHandler(idempotency.NewMemory(), idempotency.Options{Required: true, FingerprintHeaders: []string{"X-Account"}})
			up := &upstream{}
			_, err := first.do(h, up)
			require.NoError(t, err)

			w, err := tt.retry.do(h, up)
			require.ErrorIs(t, err, idempotency.ErrKeyReused)
			assert.Empty(t, w.Body.String(), "an error is returned unwritten")
			assert.EqualValues(t, 1, up.calls.Load())
			assert.Equal(t, counts{Executed: 1, Reused: 1}, statsOf(h))
		})
	}

	t.Run("unconfigured header differs", func(t *testing.T) {
		h := newHandler(idempotency.NewMemory(), idempotency.Options{Required: true, FingerprintHeaders: []string{"X-Account"}})
		up := &upstream{}
		_, err := first.do(h, up)
		require.NoError(t, err)
		w, err := first.with(func(c *call) { c.header = http.Header{"X-Account": {"acct_1"}, "X-Trace": {"t2"}} }).do(h, up)
		require.NoError(t, err)
		assert.True(t, replayed(w))
		assert.EqualValues(t, 1, up.calls.Load())
	})
}

func TestServeMissingAndMalformedKey(t *testing.T) {
	t.Run("required", func(t *testing.T) {
		s := idempotency.NewMemory()
		h := newHandler(s, idempotency.Options{Required: true})
		up := &upstream{}
		_, err := charge.with(func(c *call) { c.key = "" }).do(h, up)
		require.ErrorIs(t, err, idempotency.ErrKeyMissing)
		assert.Zero(t, up.calls.Load())
		assert.Zero(t, s.Len())
	})

	t.Run("optional passes through", func(t *testing.T) {
		s := idempotency.NewMemory()
		h := newHandler(s, idempotency.Options{})
		up := &upstream{}
		for range 2 {
			w, err := charge.with(func(c *call) { c.key = "" }).do(h, up)
			require.NoError(t, err)
			assert.Equal(t, http.StatusCreated, w.Code)
			assert.False(t, replayed(w))
		}
		assert.EqualValues(t, 2, up.calls.Load())
		assert.Zero(t, s.Len())
		assert.Equal(t, counts{}, statsOf(h))
	})

	t.Run("required but optional for this request", func(t *testing.T) {
		s := idempotency.NewMemory()
		h := newHandler(s, idempotency.Options{Required: true})
		up := &upstream{}
		w, err := charge.with(func(c *call) { c.key, c.optional = "", true }).do(h, up)
		require.NoError(t, err)
		assert.Equal(t, http.StatusCreated, w.Code)
		assert.Zero(t, s.Len())

		_, err = charge.with(func(c *call) { c.optional = true }).do(h, up)
		require.NoError(t, err)
		w, err = charge.with(func(c *call) { c.optional = true }).do(h, up)
		require.NoError(t, err)
		assert.True(t, replayed(w), "a key sent on an optional request is honoured")
		assert.EqualValues(t, 2, up.calls.Load())
	})

	for _, required := range []bool{true, false} {
		t.Run("malformed required="+strconv.FormatBool(required), func(t *testing.T) {
			h := newHandler(idempotency.NewMemory(), idempotency.Options{Required: required})
			up := &upstream{}
			_, err := charge.with(func(c *call) { c.key = `"unterminated` }).do(h, up)
			require.ErrorIs(t, err, idempotency.ErrKeyMalformed)
			assert.Zero(t, up.calls.Load())
		})
	}

	t.Run("two key fields", func(t *testing.T) {
		h := newHandler(idempotency.NewMemory(), idempotency.Options{Required: true})
		up := &upstream{}
		_, err := charge.with(func(c *call) {
			c.key = ""
			c.header = http.Header{idempotency.HeaderName: {"a", "b"}}
		}).do(h, up)
		require.ErrorIs(t, err, idempotency.ErrKeyMalformed)
		assert.Zero(t, up.calls.Load())
	})
}

func TestServeMethods(t *testing.T) {
	tests := []struct {
		name    string
		methods []string
		method  string
		covered bool
	}{
		{"default POST", nil, http.MethodPost, true},
		{"default PATCH", nil, http.MethodPatch, true},
		{"default GET", nil, http.MethodGet, false},
		{"default PUT", nil, http.MethodPut, false},
		{"default DELETE", nil, http.MethodDelete, false},
		{"configured PUT", []string{"POST", "PATCH", "PUT"}, http.MethodPut, true},
		{"configured lowercase put", []string{"put"}, http.MethodPut, true},
		{"configured PUT only leaves POST", []string{"PUT"}, http.MethodPost, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := idempotency.NewMemory()
			h := newHandler(s, idempotency.Options{Required: true, Methods: tt.methods})
			assert.Equal(t, tt.covered, h.Covers(tt.method))
			up := &upstream{}
			req := charge.with(func(c *call) { c.method = tt.method })
			var last *httptest.ResponseRecorder
			for range 2 {
				w, err := req.do(h, up)
				require.NoError(t, err)
				last = w
			}
			if tt.covered {
				assert.EqualValues(t, 1, up.calls.Load())
				assert.True(t, replayed(last))
				return
			}
			assert.EqualValues(t, 2, up.calls.Load())
			assert.False(t, replayed(last))
			assert.Zero(t, s.Len())

			_, err := req.with(func(c *call) { c.key = "" }).do(h, up)
			require.NoError(t, err, "an uncovered method needs no key")
		})
	}
}

// blockingUpstream runs until release is closed, signalling started first.
func blockingUpstream() (up *upstream, started <-chan struct{}, release chan struct{}) {
	s := make(chan struct{})
	release = make(chan struct{})
	var once sync.Once
	up = &upstream{fn: func(w http.ResponseWriter, _ *http.Request) {
		once.Do(func() { close(s) })
		<-release
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte("done"))
	}}
	return up, s, release
}

func TestServeInProgress(t *testing.T) {
	h := newHandler(idempotency.NewMemory(), idempotency.Options{Required: true})
	up, started, release := blockingUpstream()

	var wg sync.WaitGroup
	var first *httptest.ResponseRecorder
	var firstErr error
	wg.Go(func() { first, firstErr = charge.do(h, up) })
	<-started

	_, err := charge.do(h, up)
	require.ErrorIs(t, err, idempotency.ErrInProgress)
	_, err = charge.with(func(c *call) { c.body = `{"amount":999}` }).do(h, up)
	require.ErrorIs(t, err, idempotency.ErrKeyReused, "422 wins over 409")

	close(release)
	wg.Wait()
	require.NoError(t, firstErr)
	assert.Equal(t, "done", first.Body.String())

	w, err := charge.do(h, up)
	require.NoError(t, err)
	assert.True(t, replayed(w))
	assert.Equal(t, "done", w.Body.String())
	assert.EqualValues(t, 1, up.calls.Load())
	assert.Equal(t, counts{Executed: 1, InProgress: 1, Reused: 1, Replayed: 1}, statsOf(h))
}

func TestServeConcurrentSameKey(t *testing.T) {
	const n = 200
	h := newHandler(idempotency.NewMemory(), idempotency.Options{Required: true})
	up := &upstream{fn: func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(5 * time.Millisecond)
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte("once"))
	}}

	var executed, replays, inProgress, other atomic.Int64
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-gate
			w, err := charge.do(h, up)
			switch {
			case errors.Is(err, idempotency.ErrInProgress):
				inProgress.Add(1)
			case err != nil:
				other.Add(1)
			case replayed(w) && w.Code == http.StatusCreated && w.Body.String() == "once":
				replays.Add(1)
			case !replayed(w) && w.Code == http.StatusCreated:
				executed.Add(1)
			default:
				other.Add(1)
			}
		})
	}
	close(gate)
	wg.Wait()

	assert.EqualValues(t, 1, up.calls.Load())
	assert.EqualValues(t, 1, executed.Load())
	assert.Zero(t, other.Load())
	assert.EqualValues(t, n-1, replays.Load()+inProgress.Load())
	st := statsOf(h)
	assert.EqualValues(t, 1, st.Executed)
	assert.EqualValues(t, replays.Load(), st.Replayed)
	assert.EqualValues(t, inProgress.Load(), st.InProgress)
}

func TestServeKeysScopedByPrincipal(t *testing.T) {
	h := newHandler(idempotency.NewMemory(), idempotency.Options{Required: true})
	up := &upstream{}
	a := charge.with(func(c *call) { c.principal = "client-a" })
	b := charge.with(func(c *call) { c.principal = "client-b" })

	wa, err := a.do(h, up)
	require.NoError(t, err)
	wb, err := b.do(h, up)
	require.NoError(t, err)
	assert.False(t, replayed(wb))
	assert.EqualValues(t, 2, up.calls.Load())
	assert.NotEqual(t, wa.Body.String(), wb.Body.String())

	ra, err := a.do(h, up)
	require.NoError(t, err)
	rb, err := b.do(h, up)
	require.NoError(t, err)
	assert.Equal(t, wa.Body.String(), ra.Body.String())
	assert.Equal(t, wb.Body.String(), rb.Body.String())
	assert.EqualValues(t, 2, up.calls.Load())
}

func TestServeReleasePolicy(t *testing.T) {
	tests := []struct {
		status            int
		storeServerErrors bool
		stored            bool
	}{
		{http.StatusOK, false, true},
		{http.StatusNoContent, false, true},
		{http.StatusBadRequest, false, true},
		{http.StatusNotFound, false, true},
		{http.StatusConflict, false, true},
		{http.StatusUnprocessableEntity, false, true},
		{http.StatusRequestTimeout, false, false},
		{http.StatusTooEarly, false, false},
		{http.StatusTooManyRequests, false, false},
		{http.StatusInternalServerError, false, false},
		{http.StatusBadGateway, false, false},
		{http.StatusServiceUnavailable, false, false},
		{http.StatusGatewayTimeout, false, false},
		{http.StatusInternalServerError, true, true},
		{http.StatusServiceUnavailable, true, true},
		{http.StatusRequestTimeout, true, false},
		{http.StatusTooEarly, true, false},
		{http.StatusTooManyRequests, true, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d/store5xx=%t", tt.status, tt.storeServerErrors), func(t *testing.T) {
			s := idempotency.NewMemory()
			h := newHandler(s, idempotency.Options{Required: true, StoreServerErrors: tt.storeServerErrors})
			up := statusUpstream(tt.status)

			w, err := charge.do(h, up)
			require.NoError(t, err)
			assert.Equal(t, tt.status, w.Code, "the client gets the upstream's answer")

			retry, err := charge.do(h, up)
			require.NoError(t, err)
			assert.Equal(t, tt.status, retry.Code)
			if tt.stored {
				assert.True(t, replayed(retry))
				assert.Equal(t, w.Body.String(), retry.Body.String())
				assert.EqualValues(t, 1, up.calls.Load())
				assert.Equal(t, counts{Executed: 1, Replayed: 1}, statsOf(h))
				return
			}
			assert.False(t, replayed(retry))
			assert.EqualValues(t, 2, up.calls.Load(), "a released key runs again")
			assert.Equal(t, counts{Executed: 2, Released: 2}, statsOf(h))
			assert.Zero(t, s.Len())
		})
	}
}

// wrappedWriter is a middleware's response wrapper exposing Unwrap.
type wrappedWriter struct{ http.ResponseWriter }

func (w wrappedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func TestServeAbandon(t *testing.T) {
	tests := []struct {
		name string
		wrap bool
	}{
		{"recorder", false},
		{"through Unwrap", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := idempotency.NewMemory()
			h := newHandler(s, idempotency.Options{Required: true, StoreServerErrors: true})
			// A reverse proxy's ErrorHandler: the upstream was not reached.
			proxyError := func(w http.ResponseWriter, _ *http.Request, _ error) {
				idempotency.Abandon(w)
				w.WriteHeader(http.StatusBadGateway)
			}
			up := &upstream{fn: func(w http.ResponseWriter, r *http.Request) {
				if tt.wrap {
					w = wrappedWriter{w}
				}
				proxyError(w, r, errors.New("dial tcp: connection refused"))
			}}
			w, err := charge.do(h, up)
			require.NoError(t, err)
			assert.Equal(t, http.StatusBadGateway, w.Code)
			assert.Zero(t, s.Len())

			_, err = charge.do(h, up)
			require.NoError(t, err)
			assert.EqualValues(t, 2, up.calls.Load())
			assert.EqualValues(t, 2, h.Stats().Released.Load())
		})
	}

	t.Run("outside a handler", func(t *testing.T) {
		assert.NotPanics(t, func() {
			idempotency.Abandon(httptest.NewRecorder())
			idempotency.Abandon(wrappedWriter{httptest.NewRecorder()})
			idempotency.Abandon(nil)
		})
	})
}

func TestServeLargeResponse(t *testing.T) {
	const limit = 1024
	tests := []struct {
		name   string
		size   int
		stored bool
	}{
		{"at limit", limit, true},
		{"one over", limit + 1, false},
		{"far over", 10 * limit, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := idempotency.NewMemory()
			h := newHandler(s, idempotency.Options{Required: true, MaxResponseBytes: limit})
			body := bytes.Repeat([]byte("0123456789abcdef"), tt.size/16+1)[:tt.size]
			up := &upstream{fn: func(w http.ResponseWriter, _ *http.Request) {
				for p := body; len(p) > 0; {
					n := min(100, len(p))
					_, _ = w.Write(p[:n])
					p = p[n:]
				}
			}}
			w, err := charge.do(h, up)
			require.NoError(t, err)
			assert.Equal(t, body, w.Body.Bytes(), "the client gets the complete body")

			retry, err := charge.do(h, up)
			require.NoError(t, err)
			assert.Equal(t, body, retry.Body.Bytes())
			if tt.stored {
				assert.True(t, replayed(retry))
				assert.EqualValues(t, 1, up.calls.Load())
				return
			}
			assert.False(t, replayed(retry))
			assert.EqualValues(t, 2, up.calls.Load())
			assert.Zero(t, s.Len())
		})
	}
}

func TestServeEventStreamNotStored(t *testing.T) {
	for _, ct := range []string{"text/event-stream", "Text/Event-Stream; charset=utf-8"} {
		t.Run(ct, func(t *testing.T) {
			s := idempotency.NewMemory()
			h := newHandler(s, idempotency.Options{Required: true})
			up := &upstream{fn: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", ct)
				_, _ = w.Write([]byte("data: 1\n\n"))
				_ = http.NewResponseController(w).Flush()
				_, _ = w.Write([]byte("data: 2\n\n"))
			}}
			w, err := charge.do(h, up)
			require.NoError(t, err)
			assert.Equal(t, "data: 1\n\ndata: 2\n\n", w.Body.String())
			_, err = charge.do(h, up)
			require.NoError(t, err)
			assert.EqualValues(t, 2, up.calls.Load())
			assert.Zero(t, s.Len())
		})
	}
}

func TestServeStreamUnknownLength(t *testing.T) {
	chunked := func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("part 1;"))
		_, _ = w.Write([]byte("part 2"))
	}
	sized := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "13")
		_, _ = w.Write([]byte("part 1;part 2"))
	}
	tests := []struct {
		name    string
		opt     bool
		fn      http.HandlerFunc
		calls   int64
		records int
	}{
		{"without the option a response of unknown length is stored", false, chunked, 1, 1},
		{"with the option a response of unknown length passes unrecorded", true, chunked, 2, 0},
		{"with the option a response with Content-Length is stored", true, sized, 1, 1},
		{"with the option a 204 is stored", true, func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		}, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := idempotency.NewMemory()
			h := newHandler(s, idempotency.Options{Required: true, StreamUnknownLength: tt.opt})
			up := &upstream{fn: tt.fn}
			var bodies []string
			for i := 0; i < 2; i++ {
				w, err := charge.do(h, up)
				require.NoError(t, err)
				bodies = append(bodies, w.Body.String())
			}
			assert.Equal(t, bodies[0], bodies[1])
			assert.Equal(t, tt.calls, up.calls.Load())
			assert.Equal(t, tt.records, s.Len())
		})
	}
}

func TestServeStoredHeaders(t *testing.T) {
	s := idempotency.NewMemory()
	h := newHandler(s, idempotency.Options{Required: true})
	up := &upstream{fn: func(w http.ResponseWriter, _ *http.Request) {
		hd := w.Header()
		hd.Set("Location", "/v1/charges/ch_1")
		hd.Set("Content-Type", "application/json; charset=utf-8")
		hd["X-Multi"] = []string{"a", "b, c"}
		hd.Set("X-Request-Cost", "3")
		hd.Add("Set-Cookie", "session=secret; HttpOnly")
		hd.Set("Date", "Mon, 02 Jan 2006 15:04:05 GMT")
		hd.Add("Connection", "keep-alive, X-Conn-Scoped")
		hd.Add("Connection", "x-other-scoped")
		hd.Set("X-Conn-Scoped", "1")
		hd.Set("X-Other-Scoped", "1")
		hd.Set("Keep-Alive", "timeout=5")
		hd.Set("Transfer-Encoding", "chunked")
		hd.Set("Upgrade", "h2c")
		hd.Set("Trailer", "X-Checksum")
		hd.Set("TE", "trailers")
		hd.Set("Proxy-Connection", "keep-alive")
		hd.Set("Proxy-Authenticate", "Basic")
		hd.Set("Proxy-Authorization", "Basic Zm9vOmJhcg==")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":"ch_1"}`))
	}}
	first, err := charge.do(h, up)
	require.NoError(t, err)
	assert.Equal(t, "session=secret; HttpOnly", first.Header().Get("Set-Cookie"), "the first response is passed through untouched")

	want := http.Header{
		"Location":       {"/v1/charges/ch_1"},
		"Content-Type":   {"application/json; charset=utf-8"},
		"X-Multi":        {"a", "b, c"},
		"X-Request-Cost": {"3"},
	}
	rec := storedRecord(t, s, "client-a", "key-1")
	require.Equal(t, idempotency.StateCompleted, rec.State)
	assert.Equal(t, want, rec.Response.Header)

	retry, err := charge.do(h, up)
	require.NoError(t, err)
	want.Set(idempotency.ReplayedHeader, "true")
	assert.Equal(t, want, retry.Header())
	assert.Equal(t, http.StatusCreated, retry.Code)
	assert.Equal(t, `{"id":"ch_1"}`, retry.Body.String())
}

func TestServeUpstreamPanicReleasesKey(t *testing.T) {
	s := idempotency.NewMemory()
	h := newHandler(s, idempotency.Options{Required: true})
	var panicking atomic.Bool
	panicking.Store(true)
	up := &upstream{fn: func(w http.ResponseWriter, _ *http.Request) {
		if panicking.Load() {
			_, _ = w.Write([]byte("partial"))
			panic("upstream bug")
		}
		w.WriteHeader(http.StatusCreated)
	}}
	assert.PanicsWithValue(t, "upstream bug", func() { _, _ = charge.do(h, up) })
	assert.Zero(t, s.Len())

	panicking.Store(false)
	w, err := charge.do(h, up)
	require.NoError(t, err)
	assert.Equal(t, http.StatusCreated, w.Code)
	assert.False(t, replayed(w))
	assert.EqualValues(t, 2, up.calls.Load())

	w, err = charge.do(h, up)
	require.NoError(t, err)
	assert.True(t, replayed(w))
}

func TestServeRenewsLeaseWhileRunning(t *testing.T) {
	h := newHandler(idempotency.NewMemory(), idempotency.Options{Required: true, Lease: 150 * time.Millisecond})
	up := &upstream{fn: func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(700 * time.Millisecond)
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte("slow"))
	}}
	var wg sync.WaitGroup
	var firstErr error
	wg.Go(func() { _, firstErr = charge.do(h, up) })

	time.Sleep(400 * time.Millisecond)
	_, err := charge.do(h, up)
	require.ErrorIs(t, err, idempotency.ErrInProgress, "the lease was renewed: no takeover")

	wg.Wait()
	require.NoError(t, firstErr)
	w, err := charge.do(h, up)
	require.NoError(t, err)
	assert.True(t, replayed(w))
	assert.Equal(t, "slow", w.Body.String())
	assert.EqualValues(t, 1, up.calls.Load())
}

func TestServeFlushThroughRecorder(t *testing.T) {
	h := newHandler(idempotency.NewMemory(), idempotency.Options{Required: true})
	up := &upstream{fn: func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("part1,"))
		if err := http.NewResponseController(w).Flush(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("part2"))
	}}
	w, err := charge.do(h, up)
	require.NoError(t, err)
	assert.True(t, w.Flushed)
	assert.Equal(t, "part1,part2", w.Body.String())

	retry, err := charge.do(h, up)
	require.NoError(t, err)
	assert.True(t, replayed(retry))
	assert.Equal(t, http.StatusOK, retry.Code)
	assert.Equal(t, "part1,part2", retry.Body.String())
	assert.EqualValues(t, 1, up.calls.Load())
}

func TestServeFlushBeforeWrite(t *testing.T) {
	h := newHandler(idempotency.NewMemory(), idempotency.Options{Required: true})
	up := &upstream{fn: func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Early", "1")
		require.NoError(t, http.NewResponseController(w).Flush())
		_, _ = w.Write([]byte("late"))
	}}
	w, err := charge.do(h, up)
	require.NoError(t, err)
	assert.True(t, w.Flushed)
	assert.Equal(t, http.StatusOK, w.Code)

	retry, err := charge.do(h, up)
	require.NoError(t, err)
	assert.True(t, replayed(retry))
	assert.Equal(t, "1", retry.Header().Get("X-Early"))
	assert.Equal(t, "late", retry.Body.String())
}

// faultyStore is a Memory whose methods fail on demand.
type faultyStore struct {
	*idempotency.Memory
	claim, renew, complete, release error
}

var _ idempotency.Store = (*faultyStore)(nil)

func (s *faultyStore) Claim(ctx context.Context, key string, fp idempotency.Fingerprint, lease time.Duration) (idempotency.Claim, error) {
	if s.claim != nil {
		return idempotency.Claim{}, s.claim
	}
	return s.Memory.Claim(ctx, key, fp, lease)
}

func (s *faultyStore) Renew(ctx context.Context, key, token string, lease time.Duration) error {
	if s.renew != nil {
		return s.renew
	}
	return s.Memory.Renew(ctx, key, token, lease)
}

func (s *faultyStore) Complete(ctx context.Context, key, token string, resp *idempotency.Response, ttl time.Duration) error {
	if s.complete != nil {
		return s.complete
	}
	return s.Memory.Complete(ctx, key, token, resp, ttl)
}

func (s *faultyStore) Release(ctx context.Context, key, token string) error {
	if s.release != nil {
		return s.release
	}
	return s.Memory.Release(ctx, key, token)
}

var errDown = fmt.Errorf("%w: dial tcp 127.0.0.1:6379: connect: connection refused", idempotency.ErrUnavailable)

func TestServeStoreFailure(t *testing.T) {
	t.Run("claim fails closed", func(t *testing.T) {
		s := &faultyStore{Memory: idempotency.NewMemory(), claim: errDown}
		h := newHandler(s, idempotency.Options{Required: true})
		up := &upstream{}
		w, err := charge.do(h, up)
		require.ErrorIs(t, err, idempotency.ErrUnavailable)
		assert.Empty(t, w.Body.String())
		assert.Zero(t, up.calls.Load())
		assert.Equal(t, counts{StoreErrors: 1}, statsOf(h))
	})

	t.Run("claim fails open", func(t *testing.T) {
		s := &faultyStore{Memory: idempotency.NewMemory(), claim: errDown}
		h := newHandler(s, idempotency.Options{Required: true, FailOpen: true})
		up := &upstream{}
		w, err := charge.do(h, up)
		require.NoError(t, err)
		assert.Equal(t, http.StatusCreated, w.Code)
		assert.False(t, replayed(w))
		assert.EqualValues(t, 1, up.calls.Load())
		assert.Zero(t, s.Len())
		assert.Equal(t, counts{StoreErrors: 1, FailOpenPasses: 1}, statsOf(h))
	})

	t.Run("fail open still checks the key", func(t *testing.T) {
		s := &faultyStore{Memory: idempotency.NewMemory(), claim: errDown}
		h := newHandler(s, idempotency.Options{Required: true, FailOpen: true})
		up := &upstream{}
		_, err := charge.with(func(c *call) { c.key = "" }).do(h, up)
		require.ErrorIs(t, err, idempotency.ErrKeyMissing)
		assert.Zero(t, up.calls.Load())
	})

	t.Run("complete fails after the upstream ran", func(t *testing.T) {
		s := &faultyStore{Memory: idempotency.NewMemory(), complete: errDown}
		h := newHandler(s, idempotency.Options{Required: true, Lease: 100 * time.Millisecond})
		up := &upstream{}
		w, err := charge.do(h, up)
		require.NoError(t, err)
		assert.Equal(t, http.StatusCreated, w.Code)
		assert.Equal(t, `{"id":"ch_1"}`, w.Body.String())
		assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
		assert.EqualValues(t, 1, h.Stats().StoreErrors.Load())

		// The in-progress record ends with its lease.
		_, err = charge.do(h, up)
		require.ErrorIs(t, err, idempotency.ErrInProgress)
		require.Eventually(t, func() bool {
			_, err := charge.do(h, up)
			return err == nil
		}, 2*time.Second, 20*time.Millisecond)
		assert.EqualValues(t, 2, up.calls.Load())
	})

	t.Run("release fails after a retryable status", func(t *testing.T) {
		s := &faultyStore{Memory: idempotency.NewMemory(), release: errDown}
		h := newHandler(s, idempotency.Options{Required: true})
		up := statusUpstream(http.StatusServiceUnavailable)
		w, err := charge.do(h, up)
		require.NoError(t, err)
		assert.Equal(t, http.StatusServiceUnavailable, w.Code)
		assert.EqualValues(t, 1, h.Stats().StoreErrors.Load())
	})

	t.Run("renew fails while the upstream runs", func(t *testing.T) {
		s := &faultyStore{Memory: idempotency.NewMemory(), renew: errDown}
		h := newHandler(s, idempotency.Options{Required: true, Lease: 30 * time.Millisecond})
		up := &upstream{fn: func(w http.ResponseWriter, _ *http.Request) {
			time.Sleep(60 * time.Millisecond)
			w.WriteHeader(http.StatusCreated)
		}}
		w, err := charge.do(h, up)
		require.NoError(t, err)
		assert.Equal(t, http.StatusCreated, w.Code)
		assert.NotZero(t, h.Stats().StoreErrors.Load())
	})
}

func TestServeStats(t *testing.T) {
	s := idempotency.NewMemory()
	h := newHandler(s, idempotency.Options{Required: true})
	up, started, release := blockingUpstream()

	var wg sync.WaitGroup
	wg.Go(func() { _, _ = charge.do(h, up) })
	<-started
	assert.Equal(t, counts{Executed: 1}, statsOf(h))

	_, _ = charge.do(h, up)
	_, _ = charge.do(h, up)
	assert.Equal(t, counts{Executed: 1, InProgress: 2}, statsOf(h))

	_, _ = charge.with(func(c *call) { c.body = "other" }).do(h, up)
	assert.Equal(t, counts{Executed: 1, InProgress: 2, Reused: 1}, statsOf(h))

	close(release)
	wg.Wait()
	for range 3 {
		_, _ = charge.do(h, up)
	}
	assert.Equal(t, counts{Executed: 1, InProgress: 2, Reused: 1, Replayed: 3}, statsOf(h))

	_, err := charge.with(func(c *call) { c.key = "key-2" }).do(h, statusUpstream(http.StatusTooManyRequests))
	require.NoError(t, err)
	assert.Equal(t, counts{Executed: 2, InProgress: 2, Reused: 1, Replayed: 3, Released: 1}, statsOf(h))

	_, err = charge.with(func(c *call) { c.key = "" }).do(h, up)
	require.ErrorIs(t, err, idempotency.ErrKeyMissing)
	assert.Equal(t, counts{Executed: 2, InProgress: 2, Reused: 1, Replayed: 3, Released: 1}, statsOf(h), "a missing key counts nothing")
}

func TestWriteResponse(t *testing.T) {
	tests := []struct {
		name       string
		resp       *idempotency.Response
		wantStatus int
	}{
		{"status kept", &idempotency.Response{Status: http.StatusAccepted, Header: http.Header{"X-A": {"1"}}, Body: []byte("b")}, http.StatusAccepted},
		{"zero status is 200", &idempotency.Response{Body: []byte("b")}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			idempotency.WriteResponse(w, tt.resp)
			assert.Equal(t, tt.wantStatus, w.Code)
			assert.Equal(t, "true", w.Header().Get(idempotency.ReplayedHeader))
			assert.Equal(t, tt.resp.Body, w.Body.Bytes())
			for k, v := range tt.resp.Header {
				assert.Equal(t, v, w.Header()[k])
			}
		})
	}

	t.Run("does not alias the stored header", func(t *testing.T) {
		resp := &idempotency.Response{Status: 200, Header: http.Header{"X-A": {"1"}}}
		w := httptest.NewRecorder()
		idempotency.WriteResponse(w, resp)
		w.Header()["X-A"][0] = "changed"
		assert.Equal(t, "1", resp.Header.Get("X-A"))
	})
}
