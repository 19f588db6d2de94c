package idempotency_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/idempotency"
)

// slowComplete is a Memory store whose Complete waits for proceed, and
// says when it was called.
type slowComplete struct {
	*idempotency.Memory
	called, proceed chan struct{}
}

func (s *slowComplete) Complete(ctx context.Context, key, token string, resp *idempotency.Response, ttl time.Duration) error {
	close(s.called)
	<-s.proceed
	return s.Memory.Complete(ctx, key, token, resp, ttl)
}

// TestClientGetsTheWholeResponseOnlyOnceItIsStored: the last byte of a
// response whose record is being stored stays with the gateway until
// Complete returned, so a client holding the whole response never has an
// operation whose record a crash could still lose.
func TestClientGetsTheWholeResponseOnlyOnceItIsStored(t *testing.T) {
	store := &slowComplete{Memory: idempotency.NewMemory(), called: make(chan struct{}), proceed: make(chan struct{})}
	h := newHandler(store, idempotency.Options{Required: true})
	body := strings.Repeat("0123456789abcdef", 8<<10) // 128 KiB: past every write buffer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = h.Serve(w, r, idempotency.Request{Principal: "client-a", Target: r.URL.RequestURI()}, http.HandlerFunc(
			func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				w.WriteHeader(http.StatusCreated)
				_, _ = io.WriteString(w, body) // one write
			}))
	}))
	defer srv.Close()
	var once sync.Once
	proceed := func() { once.Do(func() { close(store.proceed) }) }
	defer proceed() // before srv.Close, which waits for the handler
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/charges", nil)
	require.NoError(t, err)
	req.Header.Set(idempotency.HeaderName, "key-1")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	<-store.called

	got := make([]byte, len(body))
	n, err := io.ReadFull(resp.Body, got[:len(body)-1])
	require.NoError(t, err, "all but the last byte arrive while the record is stored")
	last := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(resp.Body, got[n:])
		last <- err
	}()
	select {
	case <-last:
		t.Fatal("the client had the whole response before its record was stored")
	case <-time.After(200 * time.Millisecond):
	}
	proceed()
	require.NoError(t, <-last)
	assert.Equal(t, body, string(got))
}

// writeLog is a ResponseWriter that logs what reaches it: each write, and
// "flush" for each flush.
type writeLog struct {
	*httptest.ResponseRecorder
	mu     sync.Mutex
	events []string
}

func (w *writeLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.events = append(w.events, string(p))
	w.mu.Unlock()
	return w.ResponseRecorder.Write(p)
}

func (w *writeLog) Flush() {
	w.mu.Lock()
	w.events = append(w.events, "flush")
	w.mu.Unlock()
	w.ResponseRecorder.Flush()
}

func (w *writeLog) log() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.events...)
}

// serveLogged runs next through the dedupe step on a writeLog, and returns
// what reached the writer before Complete was called and in all.
func serveLogged(t *testing.T, next http.HandlerFunc) (beforeComplete, all []string) {
	t.Helper()
	w := &writeLog{ResponseRecorder: httptest.NewRecorder()}
	store := &slowComplete{Memory: idempotency.NewMemory(), called: make(chan struct{}), proceed: make(chan struct{})}
	go func() {
		<-store.called
		beforeComplete = w.log()
		close(store.proceed)
	}()
	h := newHandler(store, idempotency.Options{Required: true})
	r := httptest.NewRequest(http.MethodPost, "/v1/charges", nil)
	r.Header.Set(idempotency.HeaderName, "key-1")
	require.NoError(t, h.Serve(w, r, idempotency.Request{Principal: "client-a", Target: "/v1/charges"}, next))
	return beforeComplete, w.log()
}

// TestSmallBodyHeldWhole: a body no longer than what the server buffers
// anyway is held back whole and goes out in one write once stored, however
// many writes made it.
func TestSmallBodyHeldWhole(t *testing.T) {
	before, all := serveLogged(t, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"id":`)
		_, _ = io.WriteString(w, `"ch_1"}`)
	})
	assert.Empty(t, before, "nothing of the body before the record is stored")
	assert.Equal(t, []string{`{"id":"ch_1"}`}, all)
}

// TestLargeBodyHeldByItsLastByte: past what the server buffers, the body
// goes on as it is written but for its last byte, which goes out once the
// record is stored.
func TestLargeBodyHeldByItsLastByte(t *testing.T) {
	chunk := strings.Repeat("a", 1500)
	before, all := serveLogged(t, func(w http.ResponseWriter, _ *http.Request) {
		for range 3 {
			_, _ = io.WriteString(w, chunk)
		}
		_, _ = io.WriteString(w, "xyz")
	})
	body := strings.Repeat(chunk, 3) + "xyz"
	assert.Equal(t, body[:len(body)-1], strings.Join(before, ""))
	assert.Equal(t, body, strings.Join(all, ""))
	assert.Equal(t, "z", all[len(all)-1])
}

// TestFlushSendsAllButTheLastByte: a flush sends what was written so far
// but for its last byte, whatever its size.
func TestFlushSendsAllButTheLastByte(t *testing.T) {
	before, all := serveLogged(t, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "part1,")
		require.NoError(t, http.NewResponseController(w).Flush())
		_, _ = io.WriteString(w, "part2")
	})
	assert.Equal(t, []string{"part1", "flush"}, before)
	assert.Equal(t, []string{"part1", "flush", ",part2"}, all)
}
