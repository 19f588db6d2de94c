package replayguardcaddy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/disk"
	"github.com/replayguard/replayguard/postgres"
	"github.com/replayguard/replayguard/redisstore"
	"github.com/replayguard/replayguard/signature/hmacsig"
)

const testSecret = "caddy-module-test-secret"

func testConfig() replayguard.Config {
	return replayguard.Config{Keys: []replayguard.KeyConfig{{ID: "client-a", Secrets: []string{testSecret}}}}
}

// provision provisions h in a fresh Caddy context and cleans it up at the
// end of the test.
func provision(t *testing.T, h *Handler) error {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	err := h.Provision(ctx)
	t.Cleanup(func() { _ = h.Cleanup() })
	return err
}

func mustProvision(t *testing.T, cfg replayguard.Config) *Handler {
	t.Helper()
	h := &Handler{Config: cfg}
	require.NoError(t, provision(t, h))
	require.NoError(t, h.Validate())
	return h
}

// signedRequest returns a request signed as the client sends it.
func signedRequest(t *testing.T, secret, method, target, idemKey string, body []byte) *http.Request {
	t.Helper()
	r := httptest.NewRequest(method, "http://api.example"+target, bytes.NewReader(body))
	if idemKey != "" {
		r.Header.Set("Idempotency-Key", idemKey)
	}
	s := &hmacsig.Signer{KeyID: "client-a", Secret: []byte(secret)}
	require.NoError(t, s.Sign(r, body))
	return r
}

// inCaddy prepares r as Caddy's server does (original request and vars in
// the context), then applies rewrite to it, as uri or rewrite would.
func inCaddy(r *http.Request, rewrite func(*http.Request)) *http.Request {
	u := *r.URL
	orig := http.Request{Method: r.Method, RequestURI: r.RequestURI, URL: &u, RemoteAddr: r.RemoteAddr}
	ctx := context.WithValue(r.Context(), caddyhttp.OriginalRequestCtxKey, orig)
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{})
	r = r.WithContext(ctx)
	if rewrite != nil {
		rewrite(r)
	}
	return r
}

// clone copies a signed request so the same bytes can be sent again.
func clone(t *testing.T, r *http.Request, body []byte) *http.Request {
	t.Helper()
	c := r.Clone(context.Background())
	c.Body = io.NopCloser(bytes.NewReader(body))
	return c
}

type seen struct {
	calls     int
	path, uri string
	body      string
	vars      []any
}

func recordingNext(s *seen, status int, err error) caddyhttp.Handler {
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		s.calls++
		s.path, s.uri = r.URL.Path, r.RequestURI
		b, _ := io.ReadAll(r.Body)
		s.body = string(b)
		s.vars = []any{caddyhttp.GetVar(r.Context(), VarKeyID), caddyhttp.GetVar(r.Context(), VarSubject)}
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"order":"o-1"}`)
		return nil
	})
}

func problemCode(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	assert.Equal(t, "application/problem+json", w.Header().Get("Content-Type"))
	var p replayguard.Problem
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &p))
	return p.Code
}

// TestServeHTTPVerifiesTheRequestAsSent signs /api/orders, lets a rewrite
// turn it into /orders before replayguard runs, and checks that the
// signature is verified against what the client sent while the next
// handler gets the rewritten request with its full body.
func TestServeHTTPVerifiesTheRequestAsSent(t *testing.T) {
	h := mustProvision(t, testConfig())
	body := []byte(`{"amount":42}`)
	signed := signedRequest(t, testSecret, http.MethodPost, "/api/orders?x=1", "op-1", body)
	stripAPI := func(r *http.Request) {
		r.URL.Path = "/orders"
		r.RequestURI = "/orders?x=1"
	}

	var s seen
	w := httptest.NewRecorder()
	require.NoError(t, h.ServeHTTP(w, inCaddy(clone(t, signed, body), stripAPI), recordingNext(&s, http.StatusCreated, nil)))
	assert.Equal(t, http.StatusCreated, w.Code, w.Body.String())
	assert.Equal(t, 1, s.calls)
	assert.Equal(t, "/orders", s.path)
	assert.Equal(t, "/orders?x=1", s.uri)
	assert.Equal(t, string(body), s.body)
	assert.Equal(t, []any{"client-a", nil}, s.vars)

	// The same bytes again: a replay, answered without an error so that
	// Caddy's handle_errors does not rewrite the problem.
	w = httptest.NewRecorder()
	require.NoError(t, h.ServeHTTP(w, inCaddy(clone(t, signed, body), stripAPI), recordingNext(&s, http.StatusCreated, nil)))
	assert.Equal(t, http.StatusUnauthorized, w.Code)
	assert.Equal(t, "nonce_replayed", problemCode(t, w))
	assert.Equal(t, 1, s.calls)

	// A retry of the operation, signed anew: the stored response.
	w = httptest.NewRecorder()
	retry := signedRequest(t, testSecret, http.MethodPost, "/api/orders?x=1", "op-1", body)
	require.NoError(t, h.ServeHTTP(w, inCaddy(retry, stripAPI), recordingNext(&s, http.StatusCreated, nil)))
	assert.Equal(t, http.StatusCreated, w.Code)
	assert.Equal(t, "true", w.Header().Get("Idempotent-Replayed"))
	assert.JSONEq(t, `{"order":"o-1"}`, w.Body.String())
	assert.Equal(t, 1, s.calls)

	// Sent to /api/orders but signed over the path after the rewrite:
	// rejected, the signature covers what the client sent.
	w = httptest.NewRecorder()
	wrong := signedRequest(t, testSecret, http.MethodPost, "/orders?x=1", "op-2", body)
	wrong.URL.Path, wrong.RequestURI = "/api/orders", "/api/orders?x=1"
	require.NoError(t, h.ServeHTTP(w, inCaddy(wrong, stripAPI), recordingNext(&s, http.StatusCreated, nil)))
	assert.Equal(t, http.StatusUnauthorized, w.Code)
	assert.Equal(t, "signature_invalid", problemCode(t, w))
}

// TestServeHTTPNextErrorReleasesTheRecord returns a handler error (as
// reverse_proxy does when the upstream is down): Caddy gets the error, and
// the idempotency key is free for a retry.
func TestServeHTTPNextErrorReleasesTheRecord(t *testing.T) {
	h := mustProvision(t, testConfig())
	body := []byte(`{}`)
	upstreamDown := caddyhttp.Error(http.StatusBadGateway, errors.New("dial tcp: connection refused"))

	var s seen
	w := httptest.NewRecorder()
	err := h.ServeHTTP(w, inCaddy(signedRequest(t, testSecret, http.MethodPost, "/pay", "op-9", body), nil), recordingNext(&s, 0, upstreamDown))
	var he caddyhttp.HandlerError
	require.ErrorAs(t, err, &he)
	assert.Equal(t, http.StatusBadGateway, he.StatusCode)

	w = httptest.NewRecorder()
	require.NoError(t, h.ServeHTTP(w, inCaddy(signedRequest(t, testSecret, http.MethodPost, "/pay", "op-9", body), nil), recordingNext(&s, http.StatusOK, nil)))
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Empty(t, w.Header().Get("Idempotent-Replayed"))
	assert.Equal(t, 2, s.calls, "the retry ran again")
}

func TestServeHTTPWithoutOriginalRequest(t *testing.T) {
	h := mustProvision(t, testConfig())
	var s seen
	w := httptest.NewRecorder()
	r := signedRequest(t, testSecret, http.MethodGet, "/status", "", nil)
	require.NoError(t, h.ServeHTTP(w, r, recordingNext(&s, http.StatusOK, nil)))
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, 1, s.calls)
}

// TestBinaryOnlyFieldsAreUnknownToCaddy: the binary's own sections have no
// field in the handler, so Caddy's strict decoding of a module's JSON
// refuses them, naming the field.
func TestBinaryOnlyFieldsAreUnknownToCaddy(t *testing.T) {
	for field, value := range map[string]string{
		"listen": `"127.0.0.1:8080"`, "upstream": `"http://127.0.0.1:9000"`, "admin_listen": `"127.0.0.1:9090"`,
		"auth_listen": `"127.0.0.1:9091"`, "trusted_proxies": `["10.0.0.0/8"]`, "server": `{"read_timeout":"1m"}`,
	} {
		t.Run(field, func(t *testing.T) {
			raw := `{"keys":[{"id":"client-a","secrets":["` + testSecret + `"]}],"` + field + `":` + value + `}`
			var h Handler
			err := caddy.StrictUnmarshalJSON([]byte(raw), &h)
			require.Error(t, err)
			assert.Contains(t, err.Error(), field)
		})
	}
	var h Handler
	require.NoError(t, caddy.StrictUnmarshalJSON([]byte(`{"keys":[{"id":"client-a","secrets":["`+testSecret+`"]}],"postgres":{"dsn":"postgres://x"}}`), &h))
	assert.Equal(t, "postgres://x", h.Postgres.DSN)
}

// redis.tagging sits beside the other redis fields in the JSON, and comes
// back out of it.
func TestRedisTaggingJSON(t *testing.T) {
	var h Handler
	require.NoError(t, caddy.StrictUnmarshalJSON([]byte(`{"keys":[{"id":"client-a","secrets":["`+testSecret+`"]}],"redis":{"addrs":["127.0.0.1:6379"],"key_prefix":"acme","tagging":"principal"}}`), &h))
	assert.Equal(t, "principal", h.Redis.Tagging)
	assert.Equal(t, "acme", h.Redis.KeyPrefix)
	out, err := json.Marshal(h)
	require.NoError(t, err)
	assert.Contains(t, string(out), `"redis":{"addrs":["127.0.0.1:6379"],"key_prefix":"acme","tagging":"principal"}`)
}

func TestProvisionValidatesTheConfiguration(t *testing.T) {
	err := provision(t, &Handler{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "keys: at least one key is required")

	cfg := testConfig()
	cfg.Scheme = "carrier-pigeon"
	err = provision(t, &Handler{Config: cfg})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `scheme: unknown scheme "carrier-pigeon"`)

	cfg = testConfig()
	cfg.Nonce.Store = replayguard.StoreRedis
	err = provision(t, &Handler{Config: cfg})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "redis.addrs")

	assert.EqualError(t, (&Handler{Config: testConfig()}).Validate(), "replayguard: not provisioned")
}

func TestProvisionResolvesPlaceholders(t *testing.T) {
	t.Setenv("RG_CADDY_TEST_SECRET", "from-the-environment")
	cfg := testConfig()
	cfg.Keys[0].Secrets = []string{"{env.RG_CADDY_TEST_SECRET}"}
	h := mustProvision(t, cfg)
	assert.Equal(t, "{env.RG_CADDY_TEST_SECRET}", h.Keys[0].Secrets[0], "the JSON keeps the placeholder, not the secret")

	var s seen
	w := httptest.NewRecorder()
	r := signedRequest(t, "from-the-environment", http.MethodGet, "/", "", nil)
	require.NoError(t, h.ServeHTTP(w, r, recordingNext(&s, http.StatusOK, nil)))
	assert.Equal(t, http.StatusOK, w.Code, w.Body.String())

	cfg.Keys[0].Secrets = []string{"{env.RG_CADDY_TEST_UNSET}"}
	err := provision(t, &Handler{Config: cfg})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "keys[0].secrets[0]: empty")
}

// TestStoresOutliveAReload provisions the configuration a reload brings
// (new handler first, then the old one cleaned up, as Caddy does) and
// checks the nonce recorded before it is still rejected.
func TestStoresOutliveAReload(t *testing.T) {
	cfg := testConfig()
	cfg.Nonce.MaxEntries = 12345 // a store configuration no other test uses
	old := &Handler{Config: cfg}
	require.NoError(t, provision(t, old))
	key := old.poolKey
	refs, ok := storePool.References(key)
	require.True(t, ok)
	assert.Equal(t, 1, refs)

	signed := signedRequest(t, testSecret, http.MethodGet, "/", "", nil)
	var s seen
	w := httptest.NewRecorder()
	require.NoError(t, old.ServeHTTP(w, clone(t, signed, nil), recordingNext(&s, http.StatusOK, nil)))
	require.Equal(t, http.StatusOK, w.Code)

	// The new configuration rotates the key's secrets and changes the
	// window: neither shapes the stores.
	next := cfg
	next.Keys = []replayguard.KeyConfig{{ID: "client-a", Secrets: []string{"new-secret-0123456789", testSecret}}}
	next.Timestamp.Tolerance = replayguard.Duration(10 * 60e9)
	reloaded := &Handler{Config: next}
	require.NoError(t, provision(t, reloaded))
	assert.Equal(t, key, reloaded.poolKey)
	assert.Same(t, old.shared, reloaded.shared)
	refs, _ = storePool.References(key)
	assert.Equal(t, 2, refs)
	require.NoError(t, old.Cleanup())
	refs, _ = storePool.References(key)
	assert.Equal(t, 1, refs)

	w = httptest.NewRecorder()
	require.NoError(t, reloaded.ServeHTTP(w, clone(t, signed, nil), recordingNext(&s, http.StatusOK, nil)))
	assert.Equal(t, http.StatusUnauthorized, w.Code)
	assert.Equal(t, "nonce_replayed", problemCode(t, w))

	require.NoError(t, reloaded.Cleanup())
	_, ok = storePool.References(key)
	assert.False(t, ok, "the last handler closed the stores")
	require.NoError(t, reloaded.Cleanup(), "a second Cleanup is harmless")
}

func TestPoolKey(t *testing.T) {
	base := testConfig().WithDefaults()
	k := func(c replayguard.Config) string {
		key, err := poolKey(c, redisstore.Section{}, postgres.Config{}, disk.Config{})
		require.NoError(t, err)
		return key
	}
	same := base
	same.Keys = []replayguard.KeyConfig{{ID: "other", Secrets: []string{"x"}}}
	same.Scheme = "jwt"
	same.Timestamp.Tolerance *= 2
	same.Idempotency.TTL *= 2
	same.FailMode = replayguard.FailOpen
	assert.Equal(t, k(base), k(same), "keys, scheme, window (exact mode) and dedupe options do not shape the stores")

	for name, change := range map[string]func(*replayguard.Config){
		"nonce store":       func(c *replayguard.Config) { c.Nonce.Store = replayguard.StoreRedis },
		"nonce mode":        func(c *replayguard.Config) { c.Nonce.Mode = replayguard.ModeBloom },
		"idempotency store": func(c *replayguard.Config) { c.Idempotency.Store = replayguard.StorePostgres },
	} {
		c := base
		change(&c)
		assert.NotEqual(t, k(base), k(c), name)
	}
	withDB, err := poolKey(base, redisstore.Section{}, postgres.Config{DSN: "postgres://x"}, disk.Config{})
	require.NoError(t, err)
	assert.NotEqual(t, k(base), withDB, "postgres")
	withRedis, err := poolKey(base, redisstore.Section{Config: redisstore.Config{Addrs: []string{"127.0.0.1:6379"}}}, postgres.Config{}, disk.Config{})
	require.NoError(t, err)
	assert.NotEqual(t, k(base), withRedis, "redis")
	bloomA, bloomB := base, base
	bloomA.Nonce.Mode, bloomB.Nonce.Mode = replayguard.ModeBloom, replayguard.ModeBloom
	bloomB.Timestamp.Tolerance *= 2
	assert.NotEqual(t, k(bloomA), k(bloomB), "a Bloom store is sized for the window")
}

// TestBloomMetricsOncePerRegistry provisions two handlers sharing a Bloom
// store in one configuration: the registry still gathers (no duplicate
// series).
func TestBloomMetricsOncePerRegistry(t *testing.T) {
	cfg := testConfig()
	cfg.Nonce.Mode = replayguard.ModeBloom
	cfg.Nonce.Capacity = 1000
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	a, b := &Handler{Config: cfg}, &Handler{Config: cfg}
	require.NoError(t, a.Provision(ctx))
	defer func() { _ = a.Cleanup() }()
	require.NoError(t, b.Provision(ctx))
	defer func() { _ = b.Cleanup() }()

	var s seen
	w := httptest.NewRecorder()
	require.NoError(t, a.ServeHTTP(w, signedRequest(t, testSecret, http.MethodGet, "/", "", nil), recordingNext(&s, http.StatusOK, nil)))
	require.Equal(t, http.StatusOK, w.Code)
	mfs, err := ctx.GetMetricsRegistry().Gather()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	assert.True(t, names["replayguard_requests_total"])
	assert.True(t, names["replayguard_bloom_fill_ratio"])

	shared := a.shared
	require.Same(t, shared, b.shared)
	require.NoError(t, a.Cleanup())
	require.NoError(t, b.Cleanup())
	shared.mu.Lock()
	defer shared.mu.Unlock()
	assert.Empty(t, shared.watched, "no registry is held after cleanup")
}

// TestServeHTTPPassesNoGatewayHeader: a client's X_Replayguard_Key_Id (or
// any spelling an upstream could read as the gateway's header) is removed
// from the request Caddy passes on, which carries the verified identity
// instead; trailers are dropped.
func TestServeHTTPPassesNoGatewayHeader(t *testing.T) {
	h := mustProvision(t, testConfig())
	r := signedRequest(t, testSecret, http.MethodGet, "/orders", "", nil)
	r.Header[lookalike] = []string{"admin"}
	r.Header["X-Replayguard-Subject"] = []string{"root"}
	r.Header["x-replayguard-role"] = []string{"admin"}
	r.Trailer = http.Header{"X-Replayguard-Key-Id": {"admin"}}
	var got http.Header
	var trailer http.Header
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		got, trailer = r.Header.Clone(), r.Trailer
		return nil
	})
	w := httptest.NewRecorder()
	require.NoError(t, h.ServeHTTP(w, inCaddy(r, nil), next))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	for name := range got {
		if replayguard.IsGatewayHeader(name) {
			assert.Equal(t, replayguard.HeaderKeyID, name)
		}
	}
	assert.Equal(t, []string{"client-a"}, got[replayguard.HeaderKeyID])
	assert.Empty(t, trailer)
}

// lookalike is a header name as a CGI-reading client writes it.
var lookalike = "X_Replayguard_Key_Id"
