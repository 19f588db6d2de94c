package main_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/replayguard/replayguard/signature/hmacsig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The examples/gateway configuration, on free ports and the test's
// upstream.
func gatewayExample(t *testing.T, upstream string) (path string, env []string) {
	t.Helper()
	b, err := os.ReadFile("../../examples/gateway/replayguard.yaml")
	require.NoError(t, err)
	cfg := strings.NewReplacer("127.0.0.1:8080", "127.0.0.1:0", "127.0.0.1:9090", "127.0.0.1:0", "http://127.0.0.1:9000", upstream).Replace(string(b))
	path = filepath.Join(t.TempDir(), "replayguard.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	return path, []string{"API_SECRET=" + routeAPISecret, "STRIPE_WEBHOOK_SECRET=" + routeStripeSecret, "GITHUB_WEBHOOK_SECRET=" + routeGitHubSecret}
}

const (
	routeAPISecret    = "api-secret-0123456789abcdef"
	routeStripeSecret = "whsec_stripe0123456789abcdef"
	routeGitHubSecret = "github-secret-0123456789"
)

// One gateway serves an hmac API and Stripe and GitHub webhook endpoints,
// each verified as its route says, and refuses what no route matches.
func TestBinaryRoutesServeAnAPIAndItsWebhooks(t *testing.T) {
	up := newUpstream(t)
	path, env := gatewayExample(t, up.URL)
	g := startGatewayAt(t, path, env...)
	base := "http://" + g.addr

	r := send(t, signed(t, g, "client-a", routeAPISecret, http.MethodPost, "/v1/charges", `{"amount":100}`, time.Now()))
	require.Equal(t, http.StatusOK, r.status, r.body)

	for _, d := range []struct{ preset, secret, path string }{
		{"stripe", routeStripeSecret, "/webhooks/stripe"},
		{"github", routeGitHubSecret, "/webhooks/github"},
	} {
		out, errOut, code := rg(t, nil, "sign", "--preset", d.preset, "--secret", d.secret, "-d", `{"id":"evt_1"}`, base+d.path)
		require.Equal(t, 0, code, errOut)
		delivery := printedRequest(t, http.MethodPost, base+d.path, out, `{"id":"evt_1"}`)
		r := send(t, delivery)
		require.Equal(t, http.StatusOK, r.status, d.preset+": "+r.body)
		r = send(t, clone(t, delivery, `{"id":"evt_1"}`))
		if d.preset == "stripe" {
			assert.Equal(t, "nonce_replayed", r.code, r.body)
		} else {
			assert.Equal(t, "true", r.header.Get("Idempotent-Replayed"), "github: the redelivery gets the stored answer")
		}

		// The API's secret signs nothing a webhook route accepts.
		out, errOut, code = rg(t, nil, "sign", "--preset", d.preset, "--secret", routeAPISecret, "-d", `{"id":"evt_2"}`, base+d.path)
		require.Equal(t, 0, code, errOut)
		r = send(t, printedRequest(t, http.MethodPost, base+d.path, out, `{"id":"evt_2"}`))
		assert.Equal(t, "signature_invalid", r.code, d.preset+": "+r.body)
	}
	// sign --config signs as the route the URL matches, or --route names.
	out, errOut, code := rg(t, env, "sign", "--config", path, "-d", `{"id":"evt_3"}`, "--send", base+"/webhooks/stripe")
	require.Equal(t, 0, code, out+errOut)
	out, errOut, code = rg(t, env, "sign", "--config", path, "--route", "api", "--key-id", "client-a", "-X", "POST", "-d", `{}`, "--send", base+"/v1/refunds")
	require.Equal(t, 0, code, out+errOut)
	_, errOut, code = rg(t, env, "sign", "--config", path, "-d", `{}`, base+"/v2/x")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "no route matches")
	assert.Equal(t, int64(5), up.hits.Load())
	up.hits.Store(3)

	// An hmac request to a webhook route is not a delivery.
	r = send(t, signed(t, g, "client-a", routeAPISecret, http.MethodPost, "/webhooks/stripe", `{}`, time.Now()))
	assert.Equal(t, http.StatusUnauthorized, r.status, r.body)
	assert.Equal(t, int64(3), up.hits.Load())

	// The health route passes unsigned requests.
	res, err := http.Get(base + "/healthz")
	require.NoError(t, err)
	_ = res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, int64(4), up.hits.Load())

	for _, c := range []struct {
		target string
		status int
		code   string
	}{
		{"/v2/charges", http.StatusNotFound, "route_not_found"},
		{"/webhooks/stripex", http.StatusNotFound, "route_not_found"},
		{"/healthzz", http.StatusNotFound, "route_not_found"},
		{"/v1/../healthz", http.StatusBadRequest, "target_ambiguous"},
		{"/healthz/../v1/charges", http.StatusBadRequest, "target_ambiguous"},
		{"/healthz/%2e%2e/v1/charges", http.StatusBadRequest, "target_ambiguous"},
		{"/healthz%2Fx", http.StatusBadRequest, "target_ambiguous"},
		{"/v1/./charges", http.StatusBadRequest, "target_ambiguous"},
	} {
		r := sendRaw(t, g.addr, "GET "+c.target+" HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n")
		assert.Equal(t, c.status, r.status, c.target+": "+r.body)
		assert.Equal(t, c.code, r.code, c.target)
	}
	assert.Equal(t, int64(4), up.hits.Load(), "nothing refused reached the upstream")

	logs := g.logs.String()
	for _, route := range []string{"api", "stripe", "github", "health"} {
		assert.Contains(t, logs, `"route":"`+route+`"`)
	}
	assert.Regexp(t, regexp.MustCompile(`"route":"health","method":"GET","path":"/healthz","status":200,"unverified":true`), logs,
		"a request no route verified is logged as such")
	metrics := scrape(t, g)
	assert.Regexp(t, regexp.MustCompile(`replayguard_requests_total\{code="",outcome="accepted",route="api"\} 2\b`), metrics)
	assert.Regexp(t, regexp.MustCompile(`replayguard_requests_total\{code="signature_invalid",outcome="rejected",route="stripe"\} 1\b`), metrics)
}

// Each named route is a scope of its own: the same Idempotency-Key under
// two routes names two operations.
func TestBinaryRoutesAreScopes(t *testing.T) {
	up := newUpstream(t)
	cfg := fmt.Sprintf(`
listen: 127.0.0.1:0
upstream: %s
keys: [{id: client-a, secrets: ["%s"]}]
routes:
  - {name: orders, match: {path_prefix: /orders}}
  - {name: refunds, match: {path_prefix: /refunds}}
`, up.URL, routeAPISecret)
	g := startGateway(t, cfg)
	key := uuid.NewString()
	post := func(path string) response {
		return send(t, signedWith(t, g, http.MethodPost, path, `{}`, func(r *http.Request) { r.Header.Set("Idempotency-Key", key) }))
	}
	assert.Equal(t, http.StatusOK, post("/orders/1").status)
	r := post("/refunds/1")
	assert.Equal(t, http.StatusOK, r.status, "another route's key: another operation, not a reuse: "+r.body)
	assert.Empty(t, r.header.Get("Idempotent-Replayed"))
	r = post("/orders/2")
	assert.Equal(t, "idempotency_key_reused", r.code, "within a route the key still binds its request")
	assert.Equal(t, int64(2), up.hits.Load())
}

// A route matches on its host before a hostless one, case-insensitively
// and whatever the port; then the longest prefix wins.
func TestBinaryRoutesMatchHostThenLongestPrefix(t *testing.T) {
	a, b, c := newUpstream(t), newUpstream(t), newUpstream(t)
	cfg := fmt.Sprintf(`
listen: 127.0.0.1:0
keys: [{id: client-a, secrets: ["%s"]}]
routes:
  - {name: any, match: {path_prefix: /}, upstream: %s}
  - {name: deep, match: {path_prefix: /v1/admin}, upstream: %s}
  - {name: host, match: {host: API.example.com}, upstream: %s}
`, routeAPISecret, a.URL, b.URL, c.URL)
	g := startGateway(t, cfg)
	get := func(host, path string) {
		res := send(t, signedWith(t, g, http.MethodGet, path, "", func(r *http.Request) { r.Host = host }))
		require.Equal(t, http.StatusOK, res.status, res.body)
	}
	get("api.example.com:8443", "/v1/admin/x")
	assert.Equal(t, int64(1), c.hits.Load(), "the host route, though deep's prefix is longer")
	get("other.example.com", "/v1/admin/x")
	assert.Equal(t, int64(1), b.hits.Load())
	get("other.example.com", "/v1/adminx")
	assert.Equal(t, int64(1), a.hits.Load())
}

// The forward-auth endpoint picks the route of the request the proxy
// describes.
func TestBinaryRoutesAtTheForwardAuthEndpoint(t *testing.T) {
	cfg := fmt.Sprintf(`
listen: 127.0.0.1:0
auth_listen: 127.0.0.1:0
keys: [{id: client-a, secrets: ["%s"]}]
idempotency: {enabled: false}
routes:
  - {name: api, match: {path_prefix: /v1}}
  - {name: open, match: {path_prefix: /public}, scheme: none}
`, routeAPISecret)
	g := startGateway(t, cfg)
	auth := authAddr(t, g)
	check := func(uri string, signedFor bool) response {
		r, err := http.NewRequest(http.MethodGet, "http://"+auth+"/", nil)
		require.NoError(t, err)
		r.Header.Set("X-Forwarded-Method", http.MethodGet)
		r.Header.Set("X-Forwarded-Proto", "http")
		r.Header.Set("X-Forwarded-Host", "api.example.com")
		r.Header.Set("X-Forwarded-Uri", uri)
		if signedFor {
			s := signed(t, g, "client-a", routeAPISecret, http.MethodGet, uri, "", time.Now())
			for _, h := range []string{"X-Key-Id", "X-Timestamp", "X-Nonce", "X-Signature"} {
				r.Header.Set(h, s.Header.Get(h))
			}
		}
		return send(t, r)
	}
	assert.Equal(t, http.StatusOK, check("/public/logo.png", false).status)
	assert.Equal(t, "signature_missing", check("/v1/charges", false).code)
	assert.Equal(t, "route_not_found", check("/v2/charges", false).code)
	assert.Equal(t, "target_ambiguous", check("/public/../v1/charges", false).code)
}

// A route's configuration errors name the route's field.
func TestBinaryRoutesConfigurationErrors(t *testing.T) {
	for _, c := range []struct{ routes, field string }{
		{`[{name: hooks, scheme: stripe}]`, "routes[0].keys"},
		{`[{name: a, nonce: {store: redis}}]`, "routes[0].nonce.store"},
		{`[{name: a, idempotency: {store: memory}}]`, "routes[0].idempotency.store"},
		{`[{name: a}, {name: a}]`, "routes[1].name"},
		{`[{match: {path_prefix: /v1}}]`, "routes[0].name"},
		{`[{name: a, match: {path_prefix: /v1/../x}}]`, "routes[0].match.path_prefix"},
		{`[{name: a, timestamp: {tolerancy: 1m}}]`, "routes[0].timestamp.tolerancy"},
		{`[{name: a, timestamp: {tolerance: -1m}}]`, "routes[0].timestamp.tolerance"},
		{`[{name: a, upstream: "ftp://x"}]`, "routes[0].upstream"},
	} {
		path := filepath.Join(t.TempDir(), "replayguard.yaml")
		cfg := fmt.Sprintf("upstream: http://127.0.0.1:9\nkeys: [{id: client-a, secrets: [%q]}]\nroutes: %s\n", routeAPISecret, c.routes)
		require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
		_, errOut, code := rg(t, nil, "check", "--config", path)
		assert.Equal(t, 1, code, c.routes)
		assert.Contains(t, errOut, c.field, c.routes)
	}
}

// signedWith signs, as client-a of the route tests, a request that mutate
// changed first.
func signedWith(t *testing.T, g *gateway, method, path, body string, mutate func(*http.Request)) *http.Request {
	t.Helper()
	return signedBy(t, g, routeAPISecret, method, path, body, mutate)
}

// signedBy signs with secret, as client-a, a request that mutate changed
// first.
func signedBy(t *testing.T, g *gateway, secret, method, path, body string, mutate func(*http.Request)) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, "http://"+g.addr+path, strings.NewReader(body))
	require.NoError(t, err)
	mutate(r)
	s := &hmacsig.Signer{KeyID: "client-a", Secret: []byte(secret), Now: time.Now}
	require.NoError(t, s.Sign(r, []byte(body)))
	return r
}
