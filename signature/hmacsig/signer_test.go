package hmacsig_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
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
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/hmacsig"
	"github.com/replayguard/replayguard/timestamp"
)

func TestHMACSignerSign(t *testing.T) {
	verifier := newTestHMAC(t)
	fixedNow := func() time.Time { return time.Unix(1_700_000_000, 0) }
	fixedNonce := func() string { return testNonce }
	body := []byte(`{"amount":1000,"currency":"eur"}`)

	tests := []struct {
		name   string
		method string
		url    string
		host   string // req.Host override
		idem   string
		body   []byte
		// wantTarget and wantHost are what the verifier must see.
		wantTarget, wantHost string
	}{
		{name: "post with key and query", method: "POST", url: "https://API.Example.com:8443/v1/charges?b=2&a=1", idem: "order-42", body: body,
			wantTarget: "/v1/charges?b=2&a=1", wantHost: "API.Example.com:8443"},
		{name: "get without body", method: "GET", url: "http://example.com/v1/items", wantTarget: "/v1/items", wantHost: "example.com"},
		{name: "empty path", method: "GET", url: "http://example.com", wantTarget: "/", wantHost: "example.com"},
		{name: "escaped path", method: "DELETE", url: "http://example.com/a%2Fb/c%20d?q=%41", wantTarget: "/a%2Fb/c%20d?q=%41", wantHost: "example.com"},
		{name: "host override", method: "PATCH", url: "http://10.0.0.1:9000/x", host: "Api.Example.com", idem: "k", body: body,
			wantTarget: "/x", wantHost: "api.example.com"},
		{name: "lower-case method", method: "put", url: "http://example.com/x", body: body, wantTarget: "/x", wantHost: "example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, tt.url, nil)
			require.NoError(t, err)
			if tt.host != "" {
				req.Host = tt.host
			}
			if tt.idem != "" {
				req.Header.Set("Idempotency-Key", tt.idem)
			}
			s := &hmacsig.Signer{KeyID: testKeyID, Secret: []byte(testSecret), Now: fixedNow, NewNonce: fixedNonce}
			require.NoError(t, s.Sign(req, tt.body))

			assert.Equal(t, testKeyID, req.Header.Get("X-Key-Id"))
			assert.Equal(t, testTS, req.Header.Get("X-Timestamp"))
			assert.Equal(t, testNonce, req.Header.Get("X-Nonce"))
			want := vector{method: tt.method, host: tt.wantHost, target: tt.wantTarget, ts: testTS, nonce: testNonce, idem: tt.idem, body: tt.body}
			assert.Equal(t, "v1="+want.mac(testSecret), req.Header.Get("X-Signature"))
			assert.Equal(t, tt.idem, req.Header.Get("Idempotency-Key"))

			got, err := verifier.Verify(context.Background(), &signature.Request{
				Method: tt.method, Host: tt.wantHost, Target: tt.wantTarget, Header: req.Header, Body: tt.body,
			})
			require.NoError(t, err)
			assert.Equal(t, testKeyID, got.KeyID)
			assert.Equal(t, testNonce, got.ReplayKey)
		})
	}
}

func TestHMACSignerDefaults(t *testing.T) {
	s := &hmacsig.Signer{KeyID: testKeyID, Secret: []byte(testSecret)}
	verifier := newTestHMAC(t)
	seen := map[string]bool{}
	for range 3 {
		req, err := http.NewRequest(http.MethodPost, "http://example.com/p", nil)
		require.NoError(t, err)
		before := time.Now().Truncate(time.Second)
		require.NoError(t, s.Sign(req, []byte("b")))
		after := time.Now()

		n := req.Header.Get("X-Nonce")
		require.True(t, hmacsig.ValidNonce(n), n)
		u, err := uuid.Parse(n)
		require.NoError(t, err)
		assert.Equal(t, uuid.Version(4), u.Version())
		assert.False(t, seen[n], "nonce reused")
		seen[n] = true

		v, err := verifier.Verify(context.Background(), &signature.Request{
			Method: "POST", Host: "example.com", Target: "/p", Header: req.Header, Body: []byte("b"),
		})
		require.NoError(t, err)
		assert.False(t, v.Timestamp.Before(before) || v.Timestamp.After(after), "timestamp %v not in [%v, %v]", v.Timestamp, before, after)
	}
}

func TestHMACSignerResign(t *testing.T) {
	verifier := newTestHMAC(t)
	n := 0
	s := &hmacsig.Signer{KeyID: testKeyID, Secret: []byte(testSecret),
		NewNonce: func() string { n++; return fmt.Sprintf("nonce-%012d", n) }}
	req, err := http.NewRequest(http.MethodGet, "http://example.com/p", nil)
	require.NoError(t, err)
	require.NoError(t, s.Sign(req, nil))
	require.NoError(t, s.Sign(req, nil))
	for _, h := range []string{"X-Key-Id", "X-Timestamp", "X-Nonce", "X-Signature"} {
		assert.Len(t, req.Header.Values(h), 1, h)
	}
	v, err := verifier.Verify(context.Background(), &signature.Request{Method: "GET", Host: "example.com", Target: "/p", Header: req.Header})
	require.NoError(t, err)
	assert.Equal(t, "nonce-000000000002", v.ReplayKey)
}

func TestHMACSignerCustomHeaders(t *testing.T) {
	headers := hmacsig.Headers{KeyID: "x-api-key", Signature: "X-Api-Signature"}
	s := &hmacsig.Signer{KeyID: testKeyID, Secret: []byte(testSecret), Headers: headers}
	req, err := http.NewRequest(http.MethodGet, "http://example.com/p", nil)
	require.NoError(t, err)
	require.NoError(t, s.Sign(req, nil))
	assert.Empty(t, req.Header.Get("X-Key-Id"))
	assert.Empty(t, req.Header.Get("X-Signature"))
	assert.Equal(t, testKeyID, req.Header.Get("X-Api-Key"))
	assert.NotEmpty(t, req.Header.Get("X-Nonce"))

	verifier := newTestHMAC(t, hmacsig.WithHeaders(headers))
	_, err = verifier.Verify(context.Background(), &signature.Request{Method: "GET", Host: "example.com", Target: "/p", Header: req.Header})
	assert.NoError(t, err)
}

func TestHMACSignerErrors(t *testing.T) {
	tests := []struct {
		name   string
		signer hmacsig.Signer
		want   string
	}{
		{name: "no key id", signer: hmacsig.Signer{Secret: []byte("s")}, want: "key id and secret are required"},
		{name: "no secret", signer: hmacsig.Signer{KeyID: "k"}, want: "key id and secret are required"},
		{name: "short nonce", signer: hmacsig.Signer{KeyID: "k", Secret: []byte("s"), NewNonce: func() string { return "short" }}, want: "nonce"},
		{name: "nonce with slash", signer: hmacsig.Signer{KeyID: "k", Secret: []byte("s"), NewNonce: func() string { return "0123456789/abcdef" }}, want: "nonce"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, "http://example.com/", nil)
			require.NoError(t, err)
			err = tt.signer.Sign(req, nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.Empty(t, req.Header.Get("X-Signature"), "no partial signature")
			assert.NotContains(t, err.Error(), "secret: s")
		})
	}
}

// attempt is what the test server saw of one request.
type attempt struct {
	method        string
	idem          []string
	nonce         string
	body          []byte
	contentLength int64
	verified      signature.Verified
	verifyErr     error
}

type signedServer struct {
	*httptest.Server
	mu       sync.Mutex
	attempts []attempt
}

func (s *signedServer) seen() []attempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]attempt(nil), s.attempts...)
}

// newSignedServer starts a loopback server that verifies every request with
// verifier and answers attempt n (1-based) with respond.
func newSignedServer(t *testing.T, verifier signature.Scheme, respond func(n int, w http.ResponseWriter)) *signedServer {
	t.Helper()
	s := &signedServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("server: reading body: %v", err)
		}
		v, verr := verifier.Verify(r.Context(), signature.FromHTTP(r, body))
		s.mu.Lock()
		s.attempts = append(s.attempts, attempt{
			method: r.Method, idem: r.Header.Values("Idempotency-Key"), nonce: r.Header.Get("X-Nonce"),
			body: body, contentLength: r.ContentLength, verified: v, verifyErr: verr,
		})
		n := len(s.attempts)
		s.mu.Unlock()
		respond(n, w)
	}))
	t.Cleanup(s.Close)
	return s
}

// statuses answers attempt n with codes[n-1] (the last code repeating) and
// the body "attempt n".
func statuses(codes ...int) func(int, http.ResponseWriter) {
	return func(n int, w http.ResponseWriter) {
		code := codes[min(n, len(codes))-1]
		w.WriteHeader(code)
		_, _ = fmt.Fprintf(w, "attempt %d", n)
	}
}

type backoffRecorder struct {
	mu    sync.Mutex
	calls []int
}

func (b *backoffRecorder) backoff(n int) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, n)
	return time.Millisecond
}

func (b *backoffRecorder) seen() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.calls...)
}

func newTransport(b *backoffRecorder) *signature.Transport {
	return &signature.Transport{
		Signer:  &hmacsig.Signer{KeyID: testKeyID, Secret: []byte(testSecret)},
		Backoff: b.backoff,
	}
}

func requireVerified(t *testing.T, attempts []attempt) {
	t.Helper()
	window := timestamp.New(0, 0)
	nonces := map[string]bool{}
	for i, a := range attempts {
		require.NoError(t, a.verifyErr, "attempt %d", i+1)
		assert.Equal(t, testKeyID, a.verified.KeyID)
		assert.NoError(t, window.Check(a.verified.Timestamp, time.Now()), "attempt %d", i+1)
		assert.False(t, nonces[a.nonce], "attempt %d reuses nonce %s", i+1, a.nonce)
		nonces[a.nonce] = true
	}
}

func TestTransportPOSTRetriesShareOneIdempotencyKey(t *testing.T) {
	srv := newSignedServer(t, newTestHMAC(t), statuses(503, 503, 200))
	var b backoffRecorder
	tr := newTransport(&b)
	var generated atomic.Int32
	tr.NewIdempotencyKey = func() string { return fmt.Sprintf("generated-%d", generated.Add(1)) }

	body := make([]byte, 64<<10)
	_, _ = rand.Read(body)
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/charges?b=2&a=1", bytes.NewReader(body))
	require.NoError(t, err)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "attempt 3", string(got))

	attempts := srv.seen()
	require.Len(t, attempts, 3)
	requireVerified(t, attempts)
	for i, a := range attempts {
		assert.Equal(t, []string{"generated-1"}, a.idem, "attempt %d", i+1)
		assert.Equal(t, body, a.body, "attempt %d", i+1)
		assert.Equal(t, int64(len(body)), a.contentLength, "attempt %d", i+1)
		assert.Equal(t, http.MethodPost, a.method)
	}
	assert.Equal(t, int32(1), generated.Load())
	assert.Equal(t, []int{1, 2}, b.seen())
}

func TestTransportDefaultIdempotencyKey(t *testing.T) {
	for _, method := range []string{http.MethodPost, http.MethodPatch} {
		t.Run(method, func(t *testing.T) {
			srv := newSignedServer(t, newTestHMAC(t), statuses(503, 200))
			var b backoffRecorder
			req, err := http.NewRequest(method, srv.URL+"/x", strings.NewReader("payload"))
			require.NoError(t, err)
			resp, err := newTransport(&b).RoundTrip(req)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			assert.Equal(t, http.StatusOK, resp.StatusCode)

			attempts := srv.seen()
			require.Len(t, attempts, 2)
			requireVerified(t, attempts)
			require.Len(t, attempts[0].idem, 1)
			_, err = uuid.Parse(attempts[0].idem[0])
			assert.NoError(t, err, "default key is a UUID: %q", attempts[0].idem[0])
			assert.Equal(t, attempts[0].idem, attempts[1].idem)
		})
	}
	t.Run("fresh key per operation", func(t *testing.T) {
		srv := newSignedServer(t, newTestHMAC(t), statuses(200))
		var b backoffRecorder
		tr := newTransport(&b)
		for range 2 {
			req, err := http.NewRequest(http.MethodPost, srv.URL+"/x", strings.NewReader("payload"))
			require.NoError(t, err)
			resp, err := tr.RoundTrip(req)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
		}
		attempts := srv.seen()
		require.Len(t, attempts, 2)
		assert.NotEqual(t, attempts[0].idem, attempts[1].idem)
	})
	t.Run("no key for PUT, DELETE, GET", func(t *testing.T) {
		srv := newSignedServer(t, newTestHMAC(t), statuses(200))
		var b backoffRecorder
		tr := newTransport(&b)
		for _, m := range []string{http.MethodPut, http.MethodDelete, http.MethodGet} {
			req, err := http.NewRequest(m, srv.URL+"/x", nil)
			require.NoError(t, err)
			resp, err := tr.RoundTrip(req)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
		}
		for _, a := range srv.seen() {
			assert.Empty(t, a.idem, a.method)
		}
	})
}

func TestTransportKeepsCallerIdempotencyKey(t *testing.T) {
	srv := newSignedServer(t, newTestHMAC(t), statuses(503, 409, 200))
	var b backoffRecorder
	tr := newTransport(&b)
	tr.NewIdempotencyKey = func() string { t.Error("key generated although the caller sent one"); return "x" }

	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/charges", strings.NewReader("payload"))
	require.NoError(t, err)
	req.Header.Set("Idempotency-Key", `"caller-key-1"`)
	resp, err := tr.RoundTrip(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	attempts := srv.seen()
	require.Len(t, attempts, 3)
	requireVerified(t, attempts)
	for _, a := range attempts {
		assert.Equal(t, []string{`"caller-key-1"`}, a.idem)
	}
}

func TestTransportHonoursRetryAfter(t *testing.T) {
	srv := newSignedServer(t, newTestHMAC(t), func(n int, w http.ResponseWriter) {
		if n == 1 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	var b backoffRecorder
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/x", nil)
	require.NoError(t, err)
	resp, err := newTransport(&b).RoundTrip(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	require.Len(t, srv.seen(), 2)
	assert.Empty(t, b.seen(), "Backoff is not consulted when the server sent Retry-After")
}

func TestTransportRetryPolicy(t *testing.T) {
	tests := []struct {
		name         string
		method       string
		idem         string
		idemMethods  []string
		maxRetries   int
		codes        []int
		wantAttempts int
		wantStatus   int
	}{
		{name: "GET retried on 503", method: "GET", codes: []int{503, 200}, wantAttempts: 2, wantStatus: 200},
		{name: "GET retried on 409", method: "GET", codes: []int{409, 200}, wantAttempts: 2, wantStatus: 200},
		{name: "GET retried on 429", method: "GET", codes: []int{429, 200}, wantAttempts: 2, wantStatus: 200},
		{name: "GET retried on 502", method: "GET", codes: []int{502, 200}, wantAttempts: 2, wantStatus: 200},
		{name: "GET retried on 504", method: "GET", codes: []int{504, 200}, wantAttempts: 2, wantStatus: 200},
		{name: "HEAD retried", method: "HEAD", codes: []int{503, 200}, wantAttempts: 2, wantStatus: 200},
		{name: "PUT retried", method: "PUT", codes: []int{503, 200}, wantAttempts: 2, wantStatus: 200},
		{name: "DELETE retried", method: "DELETE", codes: []int{503, 200}, wantAttempts: 2, wantStatus: 200},
		{name: "GET not retried on 500", method: "GET", codes: []int{500, 200}, wantAttempts: 1, wantStatus: 500},
		{name: "GET not retried on 401", method: "GET", codes: []int{401, 200}, wantAttempts: 1, wantStatus: 401},
		{name: "GET not retried on 422", method: "GET", codes: []int{422, 200}, wantAttempts: 1, wantStatus: 422},
		{name: "default budget is two retries", method: "GET", codes: []int{503}, wantAttempts: 3, wantStatus: 503},
		{name: "one retry", method: "GET", maxRetries: 1, codes: []int{503}, wantAttempts: 2, wantStatus: 503},
		{name: "five retries", method: "GET", maxRetries: 5, codes: []int{503, 503, 503, 503, 200}, wantAttempts: 5, wantStatus: 200},
		{name: "negative disables retries", method: "GET", maxRetries: -1, codes: []int{503, 200}, wantAttempts: 1, wantStatus: 503},
		{name: "negative disables retries for POST", method: "POST", maxRetries: -1, codes: []int{503, 200}, wantAttempts: 1, wantStatus: 503},
		{name: "POST without key not retried", method: "POST", idemMethods: []string{}, codes: []int{503, 200}, wantAttempts: 1, wantStatus: 503},
		{name: "PATCH without key not retried", method: "PATCH", idemMethods: []string{"POST"}, codes: []int{503, 200}, wantAttempts: 1, wantStatus: 503},
		{name: "POST with caller key retried without generation", method: "POST", idem: "k-1", idemMethods: []string{}, codes: []int{503, 200}, wantAttempts: 2, wantStatus: 200},
		{name: "PUT gets a key when configured", method: "PUT", idemMethods: []string{"PUT"}, codes: []int{503, 200}, wantAttempts: 2, wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newSignedServer(t, newTestHMAC(t), statuses(tt.codes...))
			var b backoffRecorder
			tr := newTransport(&b)
			tr.MaxRetries = tt.maxRetries
			tr.IdempotencyMethods = tt.idemMethods
			var body io.Reader
			if tt.method == "POST" || tt.method == "PATCH" || tt.method == "PUT" {
				body = strings.NewReader("payload")
			}
			req, err := http.NewRequest(tt.method, srv.URL+"/x", body)
			require.NoError(t, err)
			if tt.idem != "" {
				req.Header.Set("Idempotency-Key", tt.idem)
			}
			resp, err := tr.RoundTrip(req)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			assert.Equal(t, tt.wantStatus, resp.StatusCode)

			attempts := srv.seen()
			require.Len(t, attempts, tt.wantAttempts)
			requireVerified(t, attempts)
			for _, a := range attempts {
				switch {
				case tt.idem != "":
					assert.Equal(t, []string{tt.idem}, a.idem)
				case tt.idemMethods != nil && !contains(tt.idemMethods, tt.method):
					assert.Empty(t, a.idem)
				}
				assert.Equal(t, attempts[0].idem, a.idem)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestTransportLastResponseBodyReadable(t *testing.T) {
	srv := newSignedServer(t, newTestHMAC(t), statuses(503))
	var b backoffRecorder
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/x", nil)
	require.NoError(t, err)
	resp, err := newTransport(&b).RoundTrip(req)
	require.NoError(t, err)
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, "attempt 3", string(got))
}

// flakyBase fails its first failures round trips with a transport error.
type flakyBase struct {
	failures int
	calls    atomic.Int32
	next     http.RoundTripper
}

func (f *flakyBase) RoundTrip(req *http.Request) (*http.Response, error) {
	if int(f.calls.Add(1)) <= f.failures {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, errors.New("connection reset by peer")
	}
	return f.next.RoundTrip(req)
}

func TestTransportRetriesTransportErrors(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		idemMethods []string
		wantCalls   int32
		wantErr     bool
	}{
		{name: "GET", method: "GET", wantCalls: 2},
		{name: "POST with generated key", method: "POST", wantCalls: 2},
		{name: "POST without key", method: "POST", idemMethods: []string{}, wantCalls: 1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newSignedServer(t, newTestHMAC(t), statuses(200))
			var b backoffRecorder
			tr := newTransport(&b)
			tr.IdempotencyMethods = tt.idemMethods
			base := &flakyBase{failures: 1, next: http.DefaultTransport}
			tr.Base = base
			req, err := http.NewRequest(tt.method, srv.URL+"/x", strings.NewReader("payload"))
			require.NoError(t, err)
			resp, err := tr.RoundTrip(req)
			assert.Equal(t, tt.wantCalls, base.calls.Load())
			if tt.wantErr {
				require.Error(t, err)
				assert.Contains(t, err.Error(), "connection reset")
				assert.Empty(t, srv.seen())
				return
			}
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			attempts := srv.seen()
			require.Len(t, attempts, 1)
			requireVerified(t, attempts)
			assert.Equal(t, []byte("payload"), attempts[0].body)
		})
	}
}

func TestTransportDoesNotModifyRequest(t *testing.T) {
	srv := newSignedServer(t, newTestHMAC(t), statuses(503, 200))
	var b backoffRecorder
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/charges?b=2&a=1", strings.NewReader("payload"))
	require.NoError(t, err)
	req.Header.Set("X-Custom", "1")
	wantHeader := req.Header.Clone()
	wantURL := req.URL.String()
	wantHost := req.Host
	wantLen := req.ContentLength

	resp, err := newTransport(&b).RoundTrip(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Len(t, srv.seen(), 2)

	assert.Equal(t, wantHeader, req.Header)
	assert.Equal(t, wantURL, req.URL.String())
	assert.Equal(t, wantHost, req.Host)
	assert.Equal(t, http.MethodPost, req.Method)
	assert.Equal(t, wantLen, req.ContentLength)
	for _, h := range []string{"X-Key-Id", "X-Timestamp", "X-Nonce", "X-Signature", "Idempotency-Key"} {
		assert.Empty(t, req.Header.Values(h), h)
	}
}

// trackedBody records whether it was closed.
type trackedBody struct {
	io.Reader
	closed atomic.Bool
}

func (b *trackedBody) Close() error { b.closed.Store(true); return nil }

func TestTransportClosesRequestBody(t *testing.T) {
	srv := newSignedServer(t, newTestHMAC(t), statuses(200))
	var b backoffRecorder
	body := &trackedBody{Reader: strings.NewReader("payload")}
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/x", body)
	require.NoError(t, err)
	resp, err := newTransport(&b).RoundTrip(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.True(t, body.closed.Load())
}

func TestTransportErrors(t *testing.T) {
	t.Run("no signer", func(t *testing.T) {
		body := &trackedBody{Reader: strings.NewReader("payload")}
		req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/x", body)
		require.NoError(t, err)
		resp, err := (&signature.Transport{}).RoundTrip(req)
		require.Error(t, err)
		assert.Nil(t, resp)
		assert.Contains(t, err.Error(), "no signer")
		assert.True(t, body.closed.Load(), "request body closed on error")
	})
	t.Run("signer error", func(t *testing.T) {
		srv := newSignedServer(t, newTestHMAC(t), statuses(200))
		tr := &signature.Transport{Signer: &hmacsig.Signer{KeyID: testKeyID, Secret: []byte(testSecret), NewNonce: func() string { return "bad" }}}
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/x", nil)
		require.NoError(t, err)
		resp, err := tr.RoundTrip(req)
		require.Error(t, err)
		assert.Nil(t, resp)
		assert.Empty(t, srv.seen(), "nothing sent unsigned")
	})
	t.Run("body read error", func(t *testing.T) {
		var b backoffRecorder
		req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/x", io.MultiReader(strings.NewReader("a"), errReader{}))
		require.NoError(t, err)
		_, err = newTransport(&b).RoundTrip(req)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "reading body")
	})
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestTransportCanceledContext(t *testing.T) {
	t.Run("canceled while backing off", func(t *testing.T) {
		srv := newSignedServer(t, newTestHMAC(t), statuses(503))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var calls atomic.Int32
		tr := &signature.Transport{
			Signer: &hmacsig.Signer{KeyID: testKeyID, Secret: []byte(testSecret)},
			Backoff: func(int) time.Duration {
				calls.Add(1)
				cancel()
				return time.Hour
			},
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/x", nil)
		require.NoError(t, err)
		resp, err := tr.RoundTrip(req)
		require.ErrorIs(t, err, context.Canceled)
		assert.Nil(t, resp)
		assert.Len(t, srv.seen(), 1)
		assert.Equal(t, int32(1), calls.Load())
	})
	t.Run("canceled while honouring Retry-After", func(t *testing.T) {
		answered := make(chan struct{}, 8)
		srv := newSignedServer(t, newTestHMAC(t), func(_ int, w http.ResponseWriter) {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusServiceUnavailable)
			answered <- struct{}{}
		})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			<-answered
			cancel()
		}()
		var b backoffRecorder
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/x", strings.NewReader("payload"))
		require.NoError(t, err)
		resp, err := newTransport(&b).RoundTrip(req)
		require.ErrorIs(t, err, context.Canceled)
		assert.Nil(t, resp)
		assert.Len(t, srv.seen(), 1)
	})
	t.Run("canceled before the first attempt", func(t *testing.T) {
		srv := newSignedServer(t, newTestHMAC(t), statuses(200))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var b backoffRecorder
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/x", nil)
		require.NoError(t, err)
		_, err = newTransport(&b).RoundTrip(req)
		require.ErrorIs(t, err, context.Canceled)
		assert.Empty(t, srv.seen())
		assert.Empty(t, b.seen())
	})
}

func TestTransportCustomHeaders(t *testing.T) {
	headers := hmacsig.Headers{KeyID: "X-Api-Key", Timestamp: "X-Api-Time", Nonce: "X-Nonce", Signature: "X-Api-Signature"}
	srv := newSignedServer(t, newTestHMAC(t, hmacsig.WithHeaders(headers)), statuses(503, 200))
	var b backoffRecorder
	tr := &signature.Transport{
		Signer:  &hmacsig.Signer{KeyID: testKeyID, Secret: []byte(testSecret), Headers: headers},
		Backoff: b.backoff,
	}
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/x", strings.NewReader("payload"))
	require.NoError(t, err)
	resp, err := tr.RoundTrip(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	attempts := srv.seen()
	require.Len(t, attempts, 2)
	requireVerified(t, attempts)
}
