package main_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/replayguard/replayguard/signature/hmacsig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const faE2ESecret = "forward-auth-e2e-secret-0123456789"

// servingRecord returns the start-up log record of a running gateway.
func servingRecord(t *testing.T, g *gateway) map[string]any {
	t.Helper()
	for _, line := range strings.Split(g.logs.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "replayguard serving" {
			return rec
		}
	}
	t.Fatalf("no start-up record in the logs:\n%s", g.logs.String())
	return nil
}

// authAddr is the bound address of the gateway's forward-auth endpoint.
func authAddr(t *testing.T, g *gateway) string {
	t.Helper()
	addr, _ := servingRecord(t, g)["auth_listen"].(string)
	require.NotEmpty(t, addr, "the start-up record names auth_listen")
	return addr
}

// signedTo is a request a client signed for host (the proxy in front of
// the API), not sent anywhere yet.
func signedTo(t *testing.T, host, method, target, body string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, "http://"+host+target, strings.NewReader(body))
	require.NoError(t, err)
	if method == http.MethodPost {
		r.Header.Set("Idempotency-Key", uuid.NewString())
	}
	s := &hmacsig.Signer{KeyID: "client-a", Secret: []byte(faE2ESecret)}
	require.NoError(t, s.Sign(r, []byte(body)))
	return r
}

// forwardAuthRequest is the check Traefik's ForwardAuth middleware sends to
// auth for orig: a GET carrying orig's headers, the X-Forwarded-* that
// describe it and, with forwardBody, its body.
func forwardAuthRequest(t *testing.T, auth string, orig *http.Request, body string, forwardBody bool) *http.Request {
	t.Helper()
	var r *http.Request
	var err error
	if forwardBody {
		r, err = http.NewRequest(http.MethodGet, "http://"+auth+"/", strings.NewReader(body))
	} else {
		r, err = http.NewRequest(http.MethodGet, "http://"+auth+"/", nil)
	}
	require.NoError(t, err)
	r.Header = orig.Header.Clone()
	r.Header.Set("X-Forwarded-Method", orig.Method)
	r.Header.Set("X-Forwarded-Proto", orig.URL.Scheme)
	r.Header.Set("X-Forwarded-Host", orig.Host)
	r.Header.Set("X-Forwarded-Uri", orig.URL.RequestURI())
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	return r
}

const faAuthOnlyConfig = `
auth_listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
max_body_bytes: 4096
keys:
  - id: client-a
    secrets: ["` + faE2ESecret + `"]
`

// TestBinaryForwardAuth runs `replayguard serve` as a forward-auth service
// only (no upstream) and sends it the checks Traefik sends.
func TestBinaryForwardAuth(t *testing.T) {
	g := startGateway(t, faAuthOnlyConfig)
	auth := authAddr(t, g)
	rec := servingRecord(t, g)
	assert.NotContains(t, rec, "listen", "no reverse proxy without upstream")
	assert.Equal(t, []any{"127.0.0.0/8", "::1/128"}, rec["trusted_proxies"])
	const api = "api.example.com"

	t.Run("valid, then replayed", func(t *testing.T) {
		orig := signedTo(t, api, http.MethodGet, "/v1/things?limit=10", "")
		r := send(t, forwardAuthRequest(t, auth, orig, "", false))
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.Equal(t, "client-a", r.header.Get("X-Replayguard-Key-Id"))
		assert.Empty(t, r.body)

		r = send(t, forwardAuthRequest(t, auth, orig, "", false))
		assert.Equal(t, http.StatusUnauthorized, r.status)
		assert.Equal(t, "nonce_replayed", r.code)
		assert.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
		assert.Empty(t, r.header.Get("X-Replayguard-Key-Id"))
	})

	t.Run("body forwarded and verified", func(t *testing.T) {
		const body = `{"amount":100}`
		orig := signedTo(t, api, http.MethodPost, "/v1/charges", body)
		r := send(t, forwardAuthRequest(t, auth, orig, body, true))
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.Equal(t, "client-a", r.header.Get("X-Replayguard-Key-Id"))

		orig = signedTo(t, api, http.MethodPost, "/v1/charges", body)
		r = send(t, forwardAuthRequest(t, auth, orig, `{"amount":999}`, true))
		assert.Equal(t, http.StatusUnauthorized, r.status)
		assert.Equal(t, "signature_invalid", r.code, "another body than the signed one")
	})

	t.Run("tampered X-Forwarded-Uri", func(t *testing.T) {
		orig := signedTo(t, api, http.MethodGet, "/v1/things?limit=10", "")
		req := forwardAuthRequest(t, auth, orig, "", false)
		req.Header.Set("X-Forwarded-Uri", "/v1/things?limit=10000")
		r := send(t, req)
		assert.Equal(t, http.StatusUnauthorized, r.status)
		assert.Equal(t, "signature_invalid", r.code)
	})

	t.Run("missing X-Forwarded-Uri", func(t *testing.T) {
		orig := signedTo(t, api, http.MethodGet, "/v1/things", "")
		req := forwardAuthRequest(t, auth, orig, "", false)
		req.Header.Del("X-Forwarded-Uri")
		r := send(t, req)
		assert.Equal(t, http.StatusBadRequest, r.status)
		assert.Equal(t, "forwarded_invalid", r.code)
		assert.Contains(t, r.body, "X-Forwarded-Uri")
	})

	t.Run("body over max_body_bytes", func(t *testing.T) {
		body := strings.Repeat("x", 5000)
		orig := signedTo(t, api, http.MethodPost, "/v1/charges", body)
		r := send(t, forwardAuthRequest(t, auth, orig, body, true))
		assert.Equal(t, http.StatusRequestEntityTooLarge, r.status)
		assert.Equal(t, "body_too_large", r.code)
	})

	t.Run("metrics", func(t *testing.T) {
		m := scrape(t, g)
		assert.Equal(t, 2.0, metricValue(t, m, "replayguard_requests_total", `outcome="accepted"`, `code=""`))
		assert.Equal(t, 1.0, metricValue(t, m, "replayguard_requests_total", `outcome="rejected"`, `code="nonce_replayed"`))
		assert.Equal(t, 2.0, metricValue(t, m, "replayguard_requests_total", `outcome="rejected"`, `code="signature_invalid"`))
		assert.Equal(t, 1.0, metricValue(t, m, "replayguard_requests_total", `outcome="rejected"`, `code="forwarded_invalid"`))
		assert.Equal(t, 1.0, metricValue(t, m, "replayguard_requests_total", `outcome="rejected"`, `code="body_too_large"`))
		assert.Equal(t, 3.0, metricValue(t, m, "replayguard_store_duration_seconds_count", `store="nonce"`, `op="add"`),
			"the nonce store is written for each request whose signature verified, and only then")
	})

	t.Run("SIGTERM shuts down gracefully", func(t *testing.T) {
		require.NoError(t, g.cmd.Process.Signal(syscall.SIGTERM))
		select {
		case err := <-g.exited:
			require.NoError(t, err)
			g.exited <- err
		case <-time.After(10 * time.Second):
			t.Fatal("no exit after SIGTERM")
		}
	})
}

// TestBinaryForwardAuthUntrustedPeer: with trusted_proxies excluding the
// loopback peer, X-Forwarded-* cannot choose the verified request, and the
// nonce of the request it names stays unused.
func TestBinaryForwardAuthUntrustedPeer(t *testing.T) {
	up := newUpstream(t)
	g := startGateway(t, fmt.Sprintf(`
listen: 127.0.0.1:0
upstream: %s
auth_listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
trusted_proxies: [10.0.0.0/8]
keys: [{id: client-a, secrets: ["%s"]}]
`, up.URL, faE2ESecret))
	auth := authAddr(t, g)
	orig := signedTo(t, g.addr, http.MethodGet, "/v1/things?limit=10", "")

	spoofed := forwardAuthRequest(t, auth, orig, "", false)
	spoofed.Header.Set("X-Forwarded-Uri", "/v1/admin")
	for _, req := range []*http.Request{spoofed, forwardAuthRequest(t, auth, orig, "", false)} {
		r := send(t, req)
		assert.Equal(t, http.StatusForbidden, r.status, r.body)
		assert.Equal(t, "forwarded_untrusted", r.code)
		assert.Empty(t, r.header.Get("X-Replayguard-Key-Id"))
	}

	// The same signed request through the reverse proxy of the same
	// process: its nonce was not consumed.
	r := send(t, clone(t, orig, ""))
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Equal(t, `upstream saw GET /v1/things?limit=10 ""`, r.body)
	assert.Equal(t, int64(1), up.hits.Load())

	m := scrape(t, g)
	assert.Equal(t, 2.0, metricValue(t, m, "replayguard_requests_total", `outcome="rejected"`, `code="forwarded_untrusted"`))
	assert.Equal(t, 1.0, metricValue(t, m, "replayguard_requests_total", `outcome="accepted"`, `code=""`))
	assert.Equal(t, 1.0, metricValue(t, m, "replayguard_store_duration_seconds_count", `store="nonce"`, `op="add"`))
	assert.Contains(t, g.logs.String(), "outside trusted_proxies")
}

// TestBinaryForwardAuthBesideProxy: the reverse proxy and the forward-auth
// endpoint of one process share the nonce store.
func TestBinaryForwardAuthBesideProxy(t *testing.T) {
	up := newUpstream(t)
	g := startGateway(t, fmt.Sprintf(`
listen: 127.0.0.1:0
upstream: %s
auth_listen: 127.0.0.1:0
keys: [{id: client-a, secrets: ["%s"]}]
`, up.URL, faE2ESecret))
	auth := authAddr(t, g)
	orig := signedTo(t, g.addr, http.MethodGet, "/v1/things", "")
	r := send(t, forwardAuthRequest(t, auth, orig, "", false))
	require.Equal(t, http.StatusOK, r.status, r.body)
	r = send(t, clone(t, orig, ""))
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Equal(t, "nonce_replayed", r.code)
	assert.Zero(t, up.hits.Load())
}

// TestBinaryServeNeedsAListener: without upstream and auth_listen there is
// nothing to serve; the error names both ways out. A bad trusted_proxies
// entry is named too, at its line and column.
func TestBinaryServeNeedsAListener(t *testing.T) {
	for doc, want := range map[string]string{
		"keys: [{id: a, secrets: [x-0123456789abcdef]}]\n":                                                                          "rg.yaml: upstream (not set): required by serve, unless auth_listen is set",
		"auth_listen: 127.0.0.1:0\ntrusted_proxies: [10.0.0.0/8, proxy.internal]\nkeys: [{id: a, secrets: [x-0123456789abcdef]}]\n": `rg.yaml:2:31: trusted_proxies[1]: want a CIDR or an IP address, got "proxy.internal"`,
	} {
		path := filepath.Join(t.TempDir(), "rg.yaml")
		require.NoError(t, os.WriteFile(path, []byte(doc), 0o600))
		out, err := exec.Command(binary(t), "serve", "--config", path).CombinedOutput()
		require.Error(t, err, doc)
		assert.Contains(t, string(out), want)
	}
}
