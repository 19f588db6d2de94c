package main_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/replayguard/replayguard/signature/hmacsig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// opUpstream is an upstream whose operations have visible effects: every
// execution gets a new sequence number.
type opUpstream struct {
	*httptest.Server
	executions atomic.Int64
	mu         sync.Mutex
	failFirst  map[string]bool
}

func newOpUpstream(t *testing.T) *opUpstream {
	u := &opUpstream{failFirst: map[string]bool{}}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/flaky" {
			u.mu.Lock()
			first := !u.failFirst[r.Header.Get("Idempotency-Key")]
			u.failFirst[r.Header.Get("Idempotency-Key")] = true
			u.mu.Unlock()
			if first {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = io.WriteString(w, "try later")
				return
			}
		}
		if r.URL.Path == "/slow" {
			time.Sleep(300 * time.Millisecond)
		}
		n := u.executions.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Location", fmt.Sprintf("/v1/charges/ch_%d", n))
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		w.Header().Set("Set-Cookie", "session=per-response")
		w.WriteHeader(http.StatusCreated)
		_, _ = fmt.Fprintf(w, `{"id":"ch_%d","principal":%q,"body":%q}`, n, r.Header.Get("X-Replayguard-Key-Id"), b)
	}))
	t.Cleanup(u.Close)
	return u
}

const idemConfig = `
listen: 127.0.0.1:0
upstream: %s
keys:
  - id: client-a
    secrets: [secret-a-0123456789]
  - id: client-b
    secrets: [secret-b-0123456789]
idempotency: {ttl: 1h, lease: 2s}
`

func signedWithKey(t *testing.T, g *gateway, keyID, secret, path, idemKey, body string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, "http://"+g.addr+path, strings.NewReader(body))
	require.NoError(t, err)
	if idemKey != "" {
		r.Header.Set("Idempotency-Key", idemKey)
	}
	require.NoError(t, (&hmacsig.Signer{KeyID: keyID, Secret: []byte(secret)}).Sign(r, []byte(body)))
	return r
}

func TestBinaryIdempotency(t *testing.T) {
	up := newOpUpstream(t)
	g := startGateway(t, fmt.Sprintf(idemConfig, up.URL))
	const secretA, secretB = "secret-a-0123456789", "secret-b-0123456789"

	t.Run("retry replays the stored response byte for byte", func(t *testing.T) {
		key := uuid.NewString()
		before := up.executions.Load()
		first := send(t, signedWithKey(t, g, "client-a", secretA, "/v1/charges", key, `{"amount":100}`))
		require.Equal(t, 201, first.status, first.body)
		retry := send(t, signedWithKey(t, g, "client-a", secretA, "/v1/charges", key, `{"amount":100}`))
		require.Equal(t, 201, retry.status, retry.body)
		assert.Equal(t, before+1, up.executions.Load(), "the upstream ran once")
		assert.Equal(t, first.body, retry.body)
		assert.Equal(t, "true", retry.header.Get("Idempotent-Replayed"))
		assert.Empty(t, first.header.Get("Idempotent-Replayed"))
		assert.Empty(t, retry.header.Values("Set-Cookie"), "Set-Cookie is never replayed")
		// Each response carries its own request's id.
		assert.NotEqual(t, first.header.Get("X-Request-Id"), retry.header.Get("X-Request-Id"))
		want := first.header.Clone()
		for _, h := range []string{"Date", "Set-Cookie", "X-Request-Id"} {
			want.Del(h)
		}
		got := retry.header.Clone()
		got.Del("Date")
		got.Del("Idempotent-Replayed")
		got.Del("X-Request-Id")
		assert.Equal(t, want, got, "status, headers and body identical")
	})

	t.Run("same key, other body is 422", func(t *testing.T) {
		key := uuid.NewString()
		require.Equal(t, 201, send(t, signedWithKey(t, g, "client-a", secretA, "/v1/charges", key, `{"amount":100}`)).status)
		r := send(t, signedWithKey(t, g, "client-a", secretA, "/v1/charges", key, `{"amount":999}`))
		assert.Equal(t, 422, r.status)
		assert.Equal(t, "idempotency_key_reused", r.code)
	})

	t.Run("missing key is 400", func(t *testing.T) {
		before := up.executions.Load()
		r := send(t, signedWithKey(t, g, "client-a", secretA, "/v1/charges", "", `{}`))
		assert.Equal(t, 400, r.status)
		assert.Equal(t, "idempotency_key_missing", r.code)
		assert.Equal(t, before, up.executions.Load())
	})

	t.Run("malformed key is 400", func(t *testing.T) {
		r := send(t, signedWithKey(t, g, "client-a", secretA, "/v1/charges", strings.Repeat("k", 256), `{}`))
		assert.Equal(t, 400, r.status)
		assert.Equal(t, "idempotency_key_malformed", r.code)
	})

	t.Run("200 concurrent requests with one key execute once", func(t *testing.T) {
		key := uuid.NewString()
		before := up.executions.Load()
		reqs := make([]*http.Request, 200)
		for i := range reqs {
			reqs[i] = signedWithKey(t, g, "client-a", secretA, "/slow", key, `{"amount":5}`)
		}
		var wg sync.WaitGroup
		var created, conflict, other atomic.Int64
		var replays atomic.Int64
		start := make(chan struct{})
		for _, req := range reqs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					other.Add(1)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				switch {
				case resp.StatusCode == 201 && resp.Header.Get("Idempotent-Replayed") == "true":
					replays.Add(1)
				case resp.StatusCode == 201:
					created.Add(1)
				case resp.StatusCode == 409 && resp.Header.Get("Retry-After") == "1":
					conflict.Add(1)
				default:
					other.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
		assert.Equal(t, before+1, up.executions.Load(), "executed exactly once")
		assert.Equal(t, int64(1), created.Load())
		assert.Zero(t, other.Load())
		assert.Equal(t, int64(199), conflict.Load()+replays.Load())
		t.Logf("1 execution, %d × 409 in progress, %d replays", conflict.Load(), replays.Load())
	})

	t.Run("one key under two principals executes twice", func(t *testing.T) {
		key := uuid.NewString()
		before := up.executions.Load()
		a := send(t, signedWithKey(t, g, "client-a", secretA, "/v1/charges", key, `{"amount":1}`))
		b := send(t, signedWithKey(t, g, "client-b", secretB, "/v1/charges", key, `{"amount":1}`))
		require.Equal(t, 201, a.status)
		require.Equal(t, 201, b.status)
		assert.Equal(t, before+2, up.executions.Load())
		assert.Empty(t, b.header.Get("Idempotent-Replayed"), "client-b never sees client-a's response")
		assert.Contains(t, b.body, `"principal":"client-b"`)
	})

	t.Run("upstream 503 is released and the retry executes", func(t *testing.T) {
		key := uuid.NewString()
		first := send(t, signedWithKey(t, g, "client-a", secretA, "/flaky", key, `{"amount":7}`))
		require.Equal(t, 503, first.status)
		before := up.executions.Load()
		retry := send(t, signedWithKey(t, g, "client-a", secretA, "/flaky", key, `{"amount":7}`))
		require.Equal(t, 201, retry.status, retry.body)
		assert.Empty(t, retry.header.Get("Idempotent-Replayed"))
		assert.Equal(t, before+1, up.executions.Load())
		again := send(t, signedWithKey(t, g, "client-a", secretA, "/flaky", key, `{"amount":7}`))
		assert.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
		assert.Equal(t, retry.body, again.body)
	})

	t.Run("unreachable upstream is 502 and released", func(t *testing.T) {
		dead := startGateway(t, fmt.Sprintf(idemConfig, "http://127.0.0.1:1"))
		key := uuid.NewString()
		r := send(t, signedWithKey(t, dead, "client-a", secretA, "/v1/charges", key, `{}`))
		assert.Equal(t, 502, r.status)
		r = send(t, signedWithKey(t, dead, "client-a", secretA, "/v1/charges", key, `{}`))
		assert.Equal(t, 502, r.status, "not a replay of the failure: the key was released")
		assert.Empty(t, r.header.Get("Idempotent-Replayed"))
	})
}
