package replayguardcaddy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/signature/hmacsig"
)

// strictTB turns a skip into a failure under CI=true: the integration
// tests must not pass in CI by not running.
type strictTB struct{ testing.TB }

func (s strictTB) Skip(args ...any) {
	s.Helper()
	if inCI() {
		s.Fatal(append([]any{"skipping is not allowed under CI=true:"}, args...)...)
	}
	s.TB.Skip(args...)
}

func (s strictTB) Skipf(format string, args ...any) {
	s.Helper()
	if inCI() {
		s.Fatalf("skipping is not allowed under CI=true: "+format, args...)
	}
	s.TB.Skipf(format, args...)
}

func (s strictTB) SkipNow() {
	s.Helper()
	if inCI() {
		s.Fatal("skipping is not allowed under CI=true")
	}
	s.TB.SkipNow()
}

func inCI() bool { return os.Getenv("CI") == "true" }

// skipShort skips a long test under -short, except under CI=true where it
// fails.
func skipShort(t *testing.T, why string) {
	t.Helper()
	if testing.Short() {
		strictTB{t}.Skipf("-short: %s", why)
	}
}

// freePorts returns n distinct free loopback ports: each is held until
// all are chosen, so none is handed out twice.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// upstream is the API behind Caddy: it counts the requests it serves and
// echoes what it saw.
// /events streams a server-sent event, then waits for release before it
// sends the second one.
type upstream struct {
	*httptest.Server
	mu      sync.Mutex
	calls   int
	release chan struct{}
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{release: make(chan struct{}, 1)}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.calls++
		n := u.calls
		u.mu.Unlock()
		if r.URL.Path == "/events" {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = fmt.Fprintf(w, "data: first of call %d\n\n", n)
			_ = http.NewResponseController(w).Flush()
			select {
			case <-u.release:
			case <-time.After(10 * time.Second):
			case <-r.Context().Done():
			}
			_, _ = fmt.Fprintf(w, "data: second of call %d\n\n", n)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Upstream-Call", fmt.Sprint(n))
		status := http.StatusOK
		if r.Method == http.MethodPost {
			status = http.StatusCreated
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"call": n, "path": r.URL.RequestURI(), "body": string(body),
			"principal": r.Header.Get("X-Replayguard-Key-Id"),
		})
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.calls
}

// wireRequest is a signed request kept as bytes so it can be sent again.
type wireRequest struct {
	method, url string
	header      http.Header
	body        []byte
}

func signWire(t *testing.T, secret, method, url, idemKey string, body []byte) wireRequest {
	t.Helper()
	r, err := http.NewRequest(method, url, bytes.NewReader(body))
	require.NoError(t, err)
	if idemKey != "" {
		r.Header.Set("Idempotency-Key", idemKey)
	}
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	s := &hmacsig.Signer{KeyID: "client-a", Secret: []byte(secret)}
	require.NoError(t, s.Sign(r, body))
	return wireRequest{method: method, url: url, header: r.Header, body: body}
}

type wireResponse struct {
	status int
	header http.Header
	body   []byte
}

func (wr wireRequest) send(t *testing.T, c *http.Client) wireResponse {
	t.Helper()
	r, err := http.NewRequest(wr.method, wr.url, bytes.NewReader(wr.body))
	require.NoError(t, err)
	r.Header = wr.header.Clone()
	resp, err := c.Do(r)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return wireResponse{status: resp.StatusCode, header: resp.Header, body: b}
}

func (r wireResponse) problem(t *testing.T) string {
	t.Helper()
	assert.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
	var p replayguard.Problem
	require.NoError(t, json.Unmarshal(r.body, &p), string(r.body))
	return p.Code
}

func (r wireResponse) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m), string(r.body))
	return m
}

// exercise runs the requests every Caddy test makes against base (a URL
// whose /api prefix Caddy strips): a signed POST, its replay, and an
// idempotent retry. It returns the first request so a test can replay it
// later, e.g. after a reload.
func exercise(t *testing.T, c *http.Client, base, secret string, up *upstream) (first wireRequest, stored []byte) {
	t.Helper()
	body := []byte(`{"amount":42}`)
	calls := up.count()
	first = signWire(t, secret, http.MethodPost, base+"/api/orders?ref=7", "order-7", body)

	resp := first.send(t, c)
	require.Equal(t, http.StatusCreated, resp.status, string(resp.body))
	got := resp.json(t)
	assert.Equal(t, "/orders?ref=7", got["path"], "the upstream sees the rewritten path")
	assert.Equal(t, string(body), got["body"])
	assert.Equal(t, "client-a", got["principal"])
	assert.Equal(t, calls+1, up.count())

	replay := first.send(t, c)
	assert.Equal(t, http.StatusUnauthorized, replay.status)
	assert.Equal(t, "nonce_replayed", replay.problem(t))

	retry := signWire(t, secret, http.MethodPost, base+"/api/orders?ref=7", "order-7", body).send(t, c)
	assert.Equal(t, http.StatusCreated, retry.status)
	assert.Equal(t, "true", retry.header.Get("Idempotent-Replayed"))
	assert.Equal(t, resp.body, retry.body, "the stored response")
	assert.Equal(t, calls+1, up.count(), "the retry did not reach the upstream")

	unsigned, err := c.Post(base+"/api/orders", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	_ = unsigned.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, unsigned.StatusCode)
	return first, resp.body
}

// afterReload checks that what was recorded before a reload still holds.
func afterReload(t *testing.T, c *http.Client, base, secret string, up *upstream, first wireRequest, stored []byte) wireResponse {
	t.Helper()
	calls := up.count()
	replay := first.send(t, c)
	assert.Equal(t, http.StatusUnauthorized, replay.status, string(replay.body))
	assert.Equal(t, "nonce_replayed", replay.problem(t))

	retry := signWire(t, secret, http.MethodPost, base+"/api/orders?ref=7", "order-7", first.body).send(t, c)
	assert.Equal(t, http.StatusCreated, retry.status)
	assert.Equal(t, "true", retry.header.Get("Idempotent-Replayed"))
	assert.Equal(t, stored, retry.body)
	assert.Equal(t, calls, up.count())

	op := fmt.Sprintf("order-after-%d", calls)
	fresh := signWire(t, secret, http.MethodPost, base+"/api/orders?ref="+op, op, first.body).send(t, c)
	assert.Equal(t, http.StatusCreated, fresh.status, string(fresh.body))
	assert.Equal(t, calls+1, up.count())
	return replay
}

// settle waits until Caddy at base answers with configuration generation
// gen three times in a row. Caddy stops the old servers in goroutines after
// a load returns; a connection the old server accepts meanwhile is closed
// unanswered, which a signed request must not run into.
func settle(t *testing.T, c *http.Client, base, gen string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for n := 0; n < 3; {
		resp, err := c.Get(base + "/")
		if err == nil {
			_ = resp.Body.Close()
		}
		if err == nil && resp.Header.Get("X-Config-Generation") == gen {
			n++
			continue
		}
		n = 0
		if time.Now().After(deadline) {
			t.Fatalf("Caddy did not answer with configuration %s within 30s (last error: %v)", gen, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
