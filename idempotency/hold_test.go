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
