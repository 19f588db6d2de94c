package replayguard_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
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
	"github.com/replayguard/replayguard/signature/hmacsig"
)

func TestForwardedRequest(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "http://replayguard:9091/auth", strings.NewReader("ignored"))
	r.Header.Set(replayguard.HeaderForwardedMethod, "POST")
	r.Header.Set(replayguard.HeaderForwardedProto, "HTTPS")
	r.Header.Set(replayguard.HeaderForwardedHost, "API.example.com")
	r.Header.Set(replayguard.HeaderForwardedURI, "/v1/charges?currency=eur&x=%2F")
	r.Header.Set("X-Forwarded-For", "203.0.113.7")
	r.Header.Set("X-Signature", "v1=abc")
	r.Header.Add("Idempotency-Key", "op-1")
	r.Header.Set("Connection", "keep-alive, X-Per-Hop")
	r.Header.Set("X-Per-Hop", "1")
	r.Header.Set("Keep-Alive", "timeout=5")
	r.Header.Set("Te", "trailers")
	r.Header.Set("Proxy-Authorization", "Basic eA==")

	sr, err := replayguard.ForwardedRequest(r, []byte("the body"))
	require.NoError(t, err)
	assert.Equal(t, "POST", sr.Method)
	assert.Equal(t, "https", sr.Scheme)
	assert.Equal(t, "API.example.com", sr.Host, "the host as the client sent it; schemes lowercase it themselves")
	assert.Equal(t, "/v1/charges?currency=eur&x=%2F", sr.Target, "the request-target as forwarded, raw query kept")
	assert.Equal(t, []byte("the body"), sr.Body)
	assert.Equal(t, "v1=abc", sr.Header.Get("X-Signature"))
	assert.Equal(t, "op-1", sr.Header.Get("Idempotency-Key"))
	assert.Equal(t, "203.0.113.7", sr.Header.Get("X-Forwarded-For"), "headers not describing the request stay")
	for _, gone := range []string{replayguard.HeaderForwardedMethod, replayguard.HeaderForwardedProto, replayguard.HeaderForwardedHost, replayguard.HeaderForwardedURI, "Connection", "X-Per-Hop", "Keep-Alive", "Te", "Proxy-Authorization"} {
		assert.Empty(t, sr.Header.Values(gone), gone)
	}
	assert.Equal(t, "POST", r.Header.Get(replayguard.HeaderForwardedMethod), "the forward-auth request is not modified")

	t.Run("defaults", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "http://api.example.com/auth", nil)
		r.Header.Set(replayguard.HeaderForwardedMethod, "GET")
		r.Header.Set(replayguard.HeaderForwardedURI, "/")
		sr, err := replayguard.ForwardedRequest(r, nil)
		require.NoError(t, err)
		assert.Equal(t, "http", sr.Scheme, "without X-Forwarded-Proto: the auth request's own")
		assert.Equal(t, "api.example.com", sr.Host, "without X-Forwarded-Host: the Host header")
		assert.Nil(t, sr.Body)
	})

	bad := []struct {
		name    string
		headers map[string]string
		want    string
	}{
		{"no method", map[string]string{replayguard.HeaderForwardedURI: "/x"}, "X-Forwarded-Method missing"},
		{"no uri", map[string]string{replayguard.HeaderForwardedMethod: "GET"}, "X-Forwarded-Uri missing"},
		{"absolute uri", map[string]string{replayguard.HeaderForwardedMethod: "GET", replayguard.HeaderForwardedURI: "http://evil/x"}, "X-Forwarded-Uri"},
		{"method with a space", map[string]string{replayguard.HeaderForwardedMethod: "GET /x", replayguard.HeaderForwardedURI: "/x"}, "X-Forwarded-Method"},
		{"other proto", map[string]string{replayguard.HeaderForwardedMethod: "GET", replayguard.HeaderForwardedURI: "/x", replayguard.HeaderForwardedProto: "ftp"}, "X-Forwarded-Proto"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "http://auth/", nil)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			_, err := replayguard.ForwardedRequest(r, nil)
			require.ErrorIs(t, err, replayguard.ErrForwardedInvalid)
			assert.Contains(t, err.Error(), tc.want)
			p := replayguard.ProblemFor(err)
			assert.Equal(t, http.StatusBadRequest, p.Status)
			assert.Equal(t, "forwarded_invalid", p.Code)
		})
	}
}

// countingNonces counts the writes a Guard makes to its replay store.
type countingNonces struct {
	nonce.Store
	adds atomic.Int64
}

func (c *countingNonces) Add(ctx context.Context, e nonce.Entry) error {
	c.adds.Add(1)
	return c.Store.Add(ctx, e)
}

// recordingObserver keeps the codes of finished requests.
type recordingObserver struct {
	mu    sync.Mutex
	codes []string
}

func (o *recordingObserver) ObserveRequest(code string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.codes = append(o.codes, code)
}
func (*recordingObserver) ObserveStore(string, string, time.Duration, error) {}
func (*recordingObserver) ObserveFailOpen(string)                            {}
func (*recordingObserver) ObserveIdempotency(string)                         {}

const faSecret = "forward-auth-secret-0123456789"

type faFixture struct {
	handler  http.Handler
	nonces   *countingNonces
	observer *recordingObserver
}

func newFAFixture(t *testing.T, trusted ...string) *faFixture {
	t.Helper()
	f := &faFixture{nonces: &countingNonces{Store: nonce.NewMemory()}, observer: &recordingObserver{}}
	cfg := replayguard.Config{
		MaxBodyBytes: 64,
		Keys:         []replayguard.KeyConfig{{ID: "client-a", Secrets: []string{faSecret}}},
	}
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	g, err := replayguard.New(cfg, replayguard.WithNonceStore(f.nonces), replayguard.WithLogger(logger), replayguard.WithObserver(f.observer))
	require.NoError(t, err)
	nets, err := replayguard.ParseTrustedProxies(trusted)
	require.NoError(t, err)
	f.handler = g.ForwardAuth(nets)
	return f
}

// signedOriginal is what a client sent to the proxy.
type signedOriginal struct {
	method, url, body string
	header            http.Header
}

func signOriginal(t *testing.T, method, url, body string) signedOriginal {
	t.Helper()
	r, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	require.NoError(t, (&hmacsig.Signer{KeyID: "client-a", Secret: []byte(faSecret)}).Sign(r, []byte(body)))
	return signedOriginal{method: method, url: url, body: body, header: r.Header}
}

// authRequest is the forward-auth request a proxy at peer makes for o,
// forwarding its body when forwardBody is set.
func (o signedOriginal) authRequest(t *testing.T, peer string, forwardBody bool) *http.Request {
	t.Helper()
	var body io.Reader
	if forwardBody {
		body = strings.NewReader(o.body)
	}
	r := httptest.NewRequest(http.MethodGet, "http://replayguard:9091/", body)
	r.RemoteAddr = peer
	r.Header = o.header.Clone()
	orig, err := http.NewRequest(o.method, o.url, nil)
	require.NoError(t, err)
	r.Header.Set(replayguard.HeaderForwardedMethod, o.method)
	r.Header.Set(replayguard.HeaderForwardedProto, orig.URL.Scheme)
	r.Header.Set(replayguard.HeaderForwardedHost, orig.Host)
	r.Header.Set(replayguard.HeaderForwardedURI, orig.URL.RequestURI())
	return r
}

type faResult struct {
	status int
	code   string
	header http.Header
	body   string
}

func (f *faFixture) do(t *testing.T, r *http.Request) faResult {
	t.Helper()
	w := httptest.NewRecorder()
	f.handler.ServeHTTP(w, r)
	res := faResult{status: w.Code, header: w.Header(), body: w.Body.String()}
	if w.Header().Get("Content-Type") == "application/problem+json" {
		var p replayguard.Problem
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &p), res.body)
		assert.Equal(t, res.status, p.Status)
		assert.Equal(t, replayguard.ProblemType+p.Code, p.Type)
		res.code = p.Code
	}
	return res
}

func TestForwardAuthHandler(t *testing.T) {
	const trustedPeer, untrustedPeer = "127.0.0.1:40000", "10.1.2.3:40000"

	t.Run("accepts once, then replay", func(t *testing.T) {
		f := newFAFixture(t)
		o := signOriginal(t, http.MethodPost, "https://api.example.com/v1/charges?currency=eur", `{"amount":100}`)
		res := f.do(t, o.authRequest(t, trustedPeer, true))
		require.Equal(t, http.StatusOK, res.status, res.body)
		assert.Equal(t, "client-a", res.header.Get(replayguard.HeaderKeyID))
		assert.Empty(t, res.body)
		res = f.do(t, o.authRequest(t, trustedPeer, true))
		assert.Equal(t, http.StatusUnauthorized, res.status)
		assert.Equal(t, "nonce_replayed", res.code)
		assert.Empty(t, res.header.Get(replayguard.HeaderKeyID))
		assert.Equal(t, []string{"", "nonce_replayed"}, f.observer.codes)
	})

	t.Run("a proxy that looks gone still gets a refusal, never the implicit 200", func(t *testing.T) {
		f := newFAFixture(t)
		o := signOriginal(t, http.MethodGet, "http://api.example.com/v1/things", "")
		require.Equal(t, http.StatusOK, f.do(t, o.authRequest(t, trustedPeer, false)).status)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		res := f.do(t, o.authRequest(t, trustedPeer, false).WithContext(ctx))
		assert.GreaterOrEqual(t, res.status, 400, "the replay was cancelled, not approved: %s", res.body)
		assert.Empty(t, res.header.Get(replayguard.HeaderKeyID))
	})

	t.Run("untrusted peer never reaches a store", func(t *testing.T) {
		f := newFAFixture(t)
		o := signOriginal(t, http.MethodPost, "https://api.example.com/v1/charges", `{"amount":100}`)
		for _, peer := range []string{untrustedPeer, "[2001:db8::1]:40000", "garbage"} {
			res := f.do(t, o.authRequest(t, peer, true))
			assert.Equal(t, http.StatusForbidden, res.status, peer)
			assert.Equal(t, "forwarded_untrusted", res.code, peer)
			assert.Contains(t, res.body, "trusted_proxies")
		}
		assert.Zero(t, f.nonces.adds.Load(), "nothing written for an untrusted peer")
		res := f.do(t, o.authRequest(t, trustedPeer, true))
		require.Equal(t, http.StatusOK, res.status, "the nonce was not consumed: %s", res.body)
		assert.Equal(t, int64(1), f.nonces.adds.Load())
		assert.Equal(t, []string{"forwarded_untrusted", "forwarded_untrusted", "forwarded_untrusted", ""}, f.observer.codes)
	})

	t.Run("trusted_proxies configured", func(t *testing.T) {
		f := newFAFixture(t, "10.0.0.0/8", "2001:db8::1")
		o := signOriginal(t, http.MethodGet, "http://api.example.com/v1/things", "")
		res := f.do(t, o.authRequest(t, trustedPeer, false))
		assert.Equal(t, "forwarded_untrusted", res.code, "loopback is no longer trusted")
		assert.Equal(t, http.StatusOK, f.do(t, o.authRequest(t, untrustedPeer, false)).status)
		o = signOriginal(t, http.MethodGet, "http://api.example.com/v1/things", "")
		assert.Equal(t, http.StatusOK, f.do(t, o.authRequest(t, "[2001:db8::1]:1", false)).status)
		o = signOriginal(t, http.MethodGet, "http://api.example.com/v1/things", "")
		assert.Equal(t, http.StatusOK, f.do(t, o.authRequest(t, "[::ffff:10.9.9.9]:1", false)).status, "an IPv4-mapped peer matches its IPv4 network")
	})

	cases := []struct {
		name   string
		build  func(t *testing.T) *http.Request
		status int
		code   string
	}{
		{"tampered X-Forwarded-Uri", func(t *testing.T) *http.Request {
			r := signOriginal(t, http.MethodGet, "http://api.example.com/v1/things?limit=1", "").authRequest(t, trustedPeer, false)
			r.Header.Set(replayguard.HeaderForwardedURI, "/v1/things?limit=1000")
			return r
		}, http.StatusUnauthorized, "signature_invalid"},
		{"tampered X-Forwarded-Method", func(t *testing.T) *http.Request {
			r := signOriginal(t, http.MethodGet, "http://api.example.com/v1/things", "").authRequest(t, trustedPeer, false)
			r.Header.Set(replayguard.HeaderForwardedMethod, "DELETE")
			return r
		}, http.StatusUnauthorized, "signature_invalid"},
		{"other host", func(t *testing.T) *http.Request {
			r := signOriginal(t, http.MethodGet, "http://api.example.com/v1/things", "").authRequest(t, trustedPeer, false)
			r.Header.Set(replayguard.HeaderForwardedHost, "admin.example.com")
			return r
		}, http.StatusUnauthorized, "signature_invalid"},
		{"body not forwarded", func(t *testing.T) *http.Request {
			return signOriginal(t, http.MethodPost, "http://api.example.com/v1/charges", `{"amount":1}`).authRequest(t, trustedPeer, false)
		}, http.StatusUnauthorized, "signature_invalid"},
		{"tampered body", func(t *testing.T) *http.Request {
			o := signOriginal(t, http.MethodPost, "http://api.example.com/v1/charges", `{"amount":1}`)
			o.body = `{"amount":9}`
			return o.authRequest(t, trustedPeer, true)
		}, http.StatusUnauthorized, "signature_invalid"},
		{"body over max_body_bytes", func(t *testing.T) *http.Request {
			return signOriginal(t, http.MethodPost, "http://api.example.com/v1/charges", strings.Repeat("x", 65)).authRequest(t, trustedPeer, true)
		}, http.StatusRequestEntityTooLarge, "body_too_large"},
		{"missing X-Forwarded-Uri", func(t *testing.T) *http.Request {
			r := signOriginal(t, http.MethodGet, "http://api.example.com/v1/things", "").authRequest(t, trustedPeer, false)
			r.Header.Del(replayguard.HeaderForwardedURI)
			return r
		}, http.StatusBadRequest, "forwarded_invalid"},
		{"missing X-Forwarded-Method", func(t *testing.T) *http.Request {
			r := signOriginal(t, http.MethodGet, "http://api.example.com/v1/things", "").authRequest(t, trustedPeer, false)
			r.Header.Del(replayguard.HeaderForwardedMethod)
			return r
		}, http.StatusBadRequest, "forwarded_invalid"},
		{"no signature", func(t *testing.T) *http.Request {
			r := signOriginal(t, http.MethodGet, "http://api.example.com/v1/things", "").authRequest(t, trustedPeer, false)
			r.Header.Del("X-Signature")
			return r
		}, http.StatusUnauthorized, "signature_missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFAFixture(t)
			res := f.do(t, tc.build(t))
			assert.Equal(t, tc.status, res.status, res.body)
			assert.Equal(t, tc.code, res.code)
			assert.Empty(t, res.header.Get(replayguard.HeaderKeyID))
			assert.Zero(t, f.nonces.adds.Load(), "a request that did not verify writes nothing")
			assert.Equal(t, []string{tc.code}, f.observer.codes)
		})
	}
}

// On the proxy listener X-Forwarded-Proto names the client's scheme only
// when a trusted proxy sent it over plain HTTP.
func TestForwardedScheme(t *testing.T) {
	nets, err := replayguard.ParseTrustedProxies([]string{"10.0.0.0/8"})
	require.NoError(t, err)
	scheme := replayguard.ForwardedScheme(nets)
	tests := []struct {
		name, url, peer, proto, want string
	}{
		{"trusted proxy, https", "http://api.example.com/", "10.1.2.3:5000", "https", "https"},
		{"trusted proxy, upper case", "http://api.example.com/", "10.1.2.3:5000", " HTTPS ", "https"},
		{"trusted proxy, http", "http://api.example.com/", "10.1.2.3:5000", "http", "http"},
		{"trusted proxy, other value", "http://api.example.com/", "10.1.2.3:5000", "wss", ""},
		{"trusted proxy, no header", "http://api.example.com/", "10.1.2.3:5000", "", ""},
		{"untrusted peer", "http://api.example.com/", "192.0.2.9:5000", "https", ""},
		{"IPv4-mapped trusted peer", "http://api.example.com/", "[::ffff:10.1.2.3]:5000", "https", "https"},
		{"arrived over TLS", "https://api.example.com/", "10.1.2.3:5000", "http", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tt.url, nil)
			r.RemoteAddr = tt.peer
			if tt.proto != "" {
				r.Header.Set("X-Forwarded-Proto", tt.proto)
			}
			assert.Equal(t, tt.want, scheme(r))
		})
	}
}
