package replayguard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/hmacsig"
)

var fixedNow = time.Unix(1_750_000_000, 0)

func testConfig() replayguard.Config {
	return replayguard.Config{Keys: []replayguard.KeyConfig{
		{ID: "client-a", Secrets: []string{"secret-a-0123456789"}},
		{ID: "rotating", Secrets: []string{"new-secret-0123456789", "old-secret-0123456789"}},
	}}
}

func newGuard(t *testing.T, cfg replayguard.Config, opts ...replayguard.Option) *replayguard.Guard {
	t.Helper()
	opts = append([]replayguard.Option{replayguard.WithClock(func() time.Time { return fixedNow })}, opts...)
	g, err := replayguard.New(cfg, opts...)
	require.NoError(t, err)
	return g
}

var keySeq atomic.Int64

func signedRequest(t *testing.T, keyID, secret, method, target string, body []byte, at time.Time, mutate ...func(*http.Request)) *http.Request {
	t.Helper()
	r := httptest.NewRequest(method, "http://api.example.com"+target, bytes.NewReader(body))
	if method == http.MethodPost {
		r.Header.Set("Idempotency-Key", "op-"+strings.ReplaceAll(time.Now().Format("150405.000000000"), ".", "")+string(rune('a'+keySeq.Add(1)%26)))
	}
	for _, m := range mutate {
		m(r)
	}
	s := &hmacsig.Signer{KeyID: keyID, Secret: []byte(secret), Now: func() time.Time { return at }}
	require.NoError(t, s.Sign(r, body))
	return r
}

func decodeProblem(t *testing.T, rec *httptest.ResponseRecorder) replayguard.Problem {
	t.Helper()
	assert.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
	var p replayguard.Problem
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p), rec.Body.String())
	assert.Equal(t, rec.Code, p.Status)
	assert.Equal(t, replayguard.ProblemType+p.Code, p.Type)
	return p
}

type upstream struct {
	hits  atomic.Int64
	mu    sync.Mutex
	last  []byte
	lastV signature.Verified
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.hits.Add(1)
	b, _ := io.ReadAll(r.Body)
	v, _ := replayguard.VerifiedFrom(r.Context())
	u.mu.Lock()
	u.last, u.lastV = b, v
	u.mu.Unlock()
	_, _ = w.Write([]byte("ok"))
}

func TestMiddlewareOutcomes(t *testing.T) {
	body := []byte(`{"amount":100}`)
	tests := []struct {
		name   string
		req    func(t *testing.T) *http.Request
		status int
		code   string
	}{
		{"valid", func(t *testing.T) *http.Request {
			return signedRequest(t, "client-a", "secret-a-0123456789", "POST", "/v1/charges?x=1", body, fixedNow)
		}, 200, ""},
		{"rotated key, new secret", func(t *testing.T) *http.Request {
			return signedRequest(t, "rotating", "new-secret-0123456789", "POST", "/v1/x", body, fixedNow)
		}, 200, ""},
		{"rotated key, old secret", func(t *testing.T) *http.Request {
			return signedRequest(t, "rotating", "old-secret-0123456789", "POST", "/v1/x", body, fixedNow)
		}, 200, ""},
		{"tampered body", func(t *testing.T) *http.Request {
			r := signedRequest(t, "client-a", "secret-a-0123456789", "POST", "/v1/x", body, fixedNow)
			r.Body = io.NopCloser(strings.NewReader(`{"amount":999}`))
			r.ContentLength = 14
			return r
		}, 401, "signature_invalid"},
		{"tampered query", func(t *testing.T) *http.Request {
			r := signedRequest(t, "client-a", "secret-a-0123456789", "POST", "/v1/x?a=1", body, fixedNow)
			r.RequestURI = "/v1/x?a=2"
			return r
		}, 401, "signature_invalid"},
		{"wrong secret", func(t *testing.T) *http.Request {
			return signedRequest(t, "client-a", "not-the-secret", "POST", "/v1/x", body, fixedNow)
		}, 401, "signature_invalid"},
		{"unknown key", func(t *testing.T) *http.Request {
			return signedRequest(t, "nobody", "secret-a-0123456789", "POST", "/v1/x", body, fixedNow)
		}, 401, "key_unknown"},
		{"missing signature", func(t *testing.T) *http.Request {
			r := signedRequest(t, "client-a", "secret-a-0123456789", "POST", "/v1/x", body, fixedNow)
			r.Header.Del("X-Signature")
			return r
		}, 401, "signature_missing"},
		{"malformed signature", func(t *testing.T) *http.Request {
			r := signedRequest(t, "client-a", "secret-a-0123456789", "POST", "/v1/x", body, fixedNow)
			r.Header.Set("X-Signature", "v1=not base64!")
			return r
		}, 401, "signature_malformed"},
		{"missing timestamp", func(t *testing.T) *http.Request {
			r := signedRequest(t, "client-a", "secret-a-0123456789", "POST", "/v1/x", body, fixedNow)
			r.Header.Del("X-Timestamp")
			return r
		}, 401, "timestamp_missing"},
		{"malformed timestamp", func(t *testing.T) *http.Request {
			r := signedRequest(t, "client-a", "secret-a-0123456789", "POST", "/v1/x", body, fixedNow)
			r.Header.Set("X-Timestamp", "yesterday")
			return r
		}, 401, "timestamp_malformed"},
		{"stale", func(t *testing.T) *http.Request {
			return signedRequest(t, "client-a", "secret-a-0123456789", "POST", "/v1/x", body, fixedNow.Add(-6*time.Minute))
		}, 401, "timestamp_expired"},
		{"future", func(t *testing.T) *http.Request {
			return signedRequest(t, "client-a", "secret-a-0123456789", "POST", "/v1/x", body, fixedNow.Add(6*time.Minute))
		}, 401, "timestamp_in_future"},
		{"missing nonce", func(t *testing.T) *http.Request {
			r := signedRequest(t, "client-a", "secret-a-0123456789", "POST", "/v1/x", body, fixedNow)
			r.Header.Del("X-Nonce")
			return r
		}, 401, "nonce_missing"},
		{"malformed nonce", func(t *testing.T) *http.Request {
			r := signedRequest(t, "client-a", "secret-a-0123456789", "POST", "/v1/x", body, fixedNow)
			r.Header.Set("X-Nonce", "short")
			return r
		}, 401, "nonce_malformed"},
		{"body too large (content-length)", func(t *testing.T) *http.Request {
			return signedRequest(t, "client-a", "secret-a-0123456789", "POST", "/v1/x", bytes.Repeat([]byte("x"), 2049), fixedNow)
		}, 413, "body_too_large"},
		{"body too large (chunked)", func(t *testing.T) *http.Request {
			big := bytes.Repeat([]byte("x"), 5000)
			r := signedRequest(t, "client-a", "secret-a-0123456789", "POST", "/v1/x", big, fixedNow)
			r.ContentLength = -1
			r.Body = io.NopCloser(bytes.NewReader(big))
			return r
		}, 413, "body_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.MaxBodyBytes = 2048
			up := &upstream{}
			h := newGuard(t, cfg).Middleware(up)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, tt.req(t))
			require.Equal(t, tt.status, rec.Code, rec.Body.String())
			if tt.code == "" {
				assert.Equal(t, int64(1), up.hits.Load())
				assert.Equal(t, "ok", rec.Body.String())
				return
			}
			assert.Zero(t, up.hits.Load(), "rejected requests never reach the upstream")
			p := decodeProblem(t, rec)
			assert.Equal(t, tt.code, p.Code)
			assert.NotContains(t, p.Detail, "secret")
		})
	}
}

func TestReplayRejectedAndUpstreamSeesBody(t *testing.T) {
	up := &upstream{}
	h := newGuard(t, testConfig()).Middleware(up)
	body := []byte(`{"a":1}`)
	req := signedRequest(t, "client-a", "secret-a-0123456789", "POST", "/v1/x", body, fixedNow)
	headers := req.Header.Clone()

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, 200, rec.Code)
	assert.Equal(t, body, up.last, "upstream receives the full body")
	assert.Equal(t, "client-a", up.lastV.KeyID)

	replay := httptest.NewRequest("POST", "http://api.example.com/v1/x", bytes.NewReader(body))
	replay.Header = headers
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, replay)
	require.Equal(t, 401, rec.Code)
	assert.Equal(t, "nonce_replayed", decodeProblem(t, rec).Code)
	assert.Equal(t, int64(1), up.hits.Load())
}

// A request whose context is cancelled (a client that half-closed its
// connection still reads the reply) is refused with a status, never left to
// net/http's implicit 200 as if it had run.
func TestCancelledRequestIsAnswered(t *testing.T) {
	up := &upstream{}
	h := newGuard(t, testConfig()).Middleware(up)
	body := []byte(`{"a":1}`)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := signedRequest(t, "client-a", "secret-a-0123456789", "POST", "/v1/x", body, fixedNow).WithContext(ctx)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	assert.GreaterOrEqual(t, rec.Code, 400, rec.Body.String())
	assert.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
	assert.Zero(t, up.hits.Load())
}

// trickle is a request body that records the largest buffer it was asked
// to fill, delivering at most step bytes per Read.
type trickle struct {
	data    []byte
	step    int
	maxRead int
}

func (b *trickle) Read(p []byte) (int, error) {
	if len(p) > b.maxRead {
		b.maxRead = len(p)
	}
	if len(b.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), b.step)], b.data)
	b.data = b.data[n:]
	return n, nil
}

func (b *trickle) Close() error { return nil }

// A large declared body is read into a buffer that grows with what has
// arrived: a slow client cannot make the gateway hold its declared size.
func TestLargeBodyBufferGrowsAsItArrives(t *testing.T) {
	up := &upstream{}
	cfg := testConfig()
	cfg.MaxBodyBytes = 4 << 20
	h := newGuard(t, cfg).Middleware(up)
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	req := signedRequest(t, "client-a", "secret-a-0123456789", "POST", "/v1/x", body, fixedNow)
	tr := &trickle{data: body, step: 4096}
	req.Body, req.ContentLength = tr, int64(len(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	assert.Equal(t, body, up.last, "the upstream gets the whole body")
	assert.LessOrEqual(t, tr.maxRead, 512<<10, "never more than twice what had arrived was allocated")

	// A body that stops short is unreadable, whatever it declared.
	short := signedRequest(t, "client-a", "secret-a-0123456789", "POST", "/v1/x", body, fixedNow)
	short.Body, short.ContentLength = &trickle{data: body[:100_000], step: 4096}, int64(len(body))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, short)
	assert.Equal(t, http.StatusBadRequest, rec.Code)
	assert.Equal(t, "body_unreadable", decodeProblem(t, rec).Code)
}

func TestSameNonceUnderTwoKeysIsTwoEntries(t *testing.T) {
	up := &upstream{}
	h := newGuard(t, testConfig()).Middleware(up)
	mk := func(key, secret string) *http.Request {
		r := httptest.NewRequest("GET", "http://api.example.com/x", nil)
		s := &hmacsig.Signer{KeyID: key, Secret: []byte(secret), Now: func() time.Time { return fixedNow }, NewNonce: func() string { return "shared-nonce-0123456789" }}
		require.NoError(t, s.Sign(r, nil))
		return r
	}
	for _, r := range []*http.Request{mk("client-a", "secret-a-0123456789"), mk("rotating", "new-secret-0123456789")} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		require.Equal(t, 200, rec.Code, rec.Body.String())
	}
}

func TestConcurrentCopiesOfOneRequestReachUpstreamOnce(t *testing.T) {
	up := &upstream{}
	h := newGuard(t, testConfig()).Middleware(up)
	body := []byte("pay")
	orig := signedRequest(t, "client-a", "secret-a-0123456789", "POST", "/pay", body, fixedNow)
	var wg sync.WaitGroup
	var ok, replayed atomic.Int64
	for i := 0; i < 50; i++ {
		r := httptest.NewRequest("POST", "http://api.example.com/pay", bytes.NewReader(body))
		r.Header = orig.Header.Clone()
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			switch rec.Code {
			case 200:
				ok.Add(1)
			case 401:
				replayed.Add(1)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int64(1), ok.Load())
	assert.Equal(t, int64(49), replayed.Load())
	assert.Equal(t, int64(1), up.hits.Load())
}

// failingStore fails every Add, as a dead shared store would.
type failingStore struct{ calls atomic.Int64 }

func (s *failingStore) Add(context.Context, nonce.Entry) error {
	s.calls.Add(1)
	return errors.Join(nonce.ErrUnavailable, errors.New("dial tcp 10.0.0.1:6379: refused"))
}

func TestStoreFailure(t *testing.T) {
	t.Run("closed", func(t *testing.T) {
		up := &upstream{}
		st := &failingStore{}
		h := newGuard(t, testConfig(), replayguard.WithNonceStore(st)).Middleware(up)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, signedRequest(t, "client-a", "secret-a-0123456789", "GET", "/", nil, fixedNow))
		require.Equal(t, 503, rec.Code)
		p := decodeProblem(t, rec)
		assert.Equal(t, "store_unavailable", p.Code)
		assert.Equal(t, "1", rec.Header().Get("Retry-After"))
		assert.NotContains(t, p.Detail, "10.0.0.1", "internal addresses stay in the logs")
		assert.Zero(t, up.hits.Load())
	})
	t.Run("open", func(t *testing.T) {
		up := &upstream{}
		cfg := testConfig()
		cfg.FailMode = "open"
		g := newGuard(t, cfg, replayguard.WithNonceStore(&failingStore{}))
		rec := httptest.NewRecorder()
		g.Middleware(up).ServeHTTP(rec, signedRequest(t, "client-a", "secret-a-0123456789", "GET", "/", nil, fixedNow))
		require.Equal(t, 200, rec.Code)
		assert.Equal(t, uint64(1), g.FailOpenPasses())
		// Signature and window are still enforced.
		rec = httptest.NewRecorder()
		g.Middleware(up).ServeHTTP(rec, signedRequest(t, "client-a", "wrong", "GET", "/", nil, fixedNow))
		assert.Equal(t, 401, rec.Code)
	})
	t.Run("no store call before the signature verifies", func(t *testing.T) {
		st := &failingStore{}
		h := newGuard(t, testConfig(), replayguard.WithNonceStore(st)).Middleware(&upstream{})
		for _, r := range []*http.Request{
			signedRequest(t, "client-a", "wrong", "GET", "/", nil, fixedNow),
			signedRequest(t, "nobody", "secret-a-0123456789", "GET", "/", nil, fixedNow),
			signedRequest(t, "client-a", "secret-a-0123456789", "GET", "/", nil, fixedNow.Add(-time.Hour)),
		} {
			h.ServeHTTP(httptest.NewRecorder(), r)
		}
		assert.Zero(t, st.calls.Load())
	})
}

func TestVerifyWithoutHTTP(t *testing.T) {
	g := newGuard(t, testConfig())
	msg := []byte(`{"event":"order.created"}`)
	r := signedRequest(t, "client-a", "secret-a-0123456789", "POST", "/queue/orders", msg, fixedNow)
	req := &signature.Request{Method: "POST", Host: "api.example.com", Target: "/queue/orders", Header: r.Header, Body: msg}
	v, err := g.Verify(context.Background(), req)
	require.NoError(t, err)
	assert.Equal(t, "client-a", v.KeyID)
	_, err = g.Verify(context.Background(), req)
	require.ErrorIs(t, err, nonce.ErrReplayed)
}

func TestNewRejectsBadConfig(t *testing.T) {
	_, err := replayguard.New(replayguard.Config{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "keys")
	cfg := testConfig()
	cfg.Nonce.Mode = "bloom"
	_, err = replayguard.New(cfg)
	require.Error(t, err, "bloom needs a store from package stores")
}

func TestProblemForUnknownErrorHidesDetail(t *testing.T) {
	p := replayguard.ProblemFor(errors.New("boom: internal state"))
	assert.Equal(t, 500, p.Status)
	assert.Empty(t, p.Detail)
}
