package replayguardcaddy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const integrationSecret = "caddytest-secret-of-client-a"

// integrationCaddyfile is a loopback-only configuration on ports no other
// Caddy uses; gen shows up in a response header so a test can tell which
// configuration answered.
// Requests under /down/ go to a port nobody listens on; handle_errors
// marks the responses Caddy's error routes wrote.
func integrationCaddyfile(admin, httpPort, httpsPort, closedPort int, storage, upstreamAddr string, gen int) string {
	return fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	https_port %d
	default_bind 127.0.0.1
	skip_install_trust
	auto_https off
	persist_config off
	grace_period 1s
	storage file_system %s
}

http://localhost:%d {
	header X-Config-Generation %d
	replayguard {
		key client-a %s
		idempotency {
			methods POST
		}
	}
	uri strip_prefix /api
	@down path /down/*
	reverse_proxy @down 127.0.0.1:%d
	reverse_proxy %s
	handle_errors {
		respond "handle_errors {err.status_code}" {err.status_code}
	}
}
`, admin, httpPort, httpsPort, storage, httpPort, gen, integrationSecret, closedPort, upstreamAddr)
}

// TestCaddyIntegration loads the module into a real Caddy (in process,
// through caddytest) and runs a signed request, its replay and an
// idempotent retry; then reloads Caddy, once with an edited Caddyfile and
// once forced with the same one, and checks that the nonce is still
// rejected and the retry still answered from the store.
func TestCaddyIntegration(t *testing.T) {
	skipShort(t, "starts Caddy")
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	ports := freePorts(t, 4)
	admin, httpPort, httpsPort, closedPort := ports[0], ports[1], ports[2], ports[3]
	up := newUpstream(t)
	storage := t.TempDir()
	upAddr := strings.TrimPrefix(up.URL, "http://")

	// Caddy runs in this process with its admin endpoint on admin, so
	// caddytest does not start its own (whose first configuration Caddy
	// would save in the real home directory).
	startCaddy(t, fmt.Sprintf("{\n\tadmin localhost:%d\n\tpersist_config off\n}\n", admin))
	tester := caddytest.NewTester(strictTB{t}).WithDefaultOverrides(caddytest.Config{
		AdminPort:          admin,
		TestRequestTimeout: 10 * time.Second,
		LoadRequestTimeout: 10 * time.Second,
	})
	tester.InitServer(integrationCaddyfile(admin, httpPort, httpsPort, closedPort, storage, upAddr, 1), "caddyfile")
	require.False(t, t.Failed(), "Caddy did not load the configuration")
	c := tester.Client
	base := fmt.Sprintf("http://localhost:%d", httpPort)

	first, stored := exercise(t, c, base, integrationSecret, up)

	t.Run("upstream down", func(t *testing.T) {
		// reverse_proxy's error goes to Caddy's handle_errors (502); the
		// record is released, so the retry is attempted again rather than
		// answered with a stored response or a 409.
		for range 2 {
			resp := signWire(t, integrationSecret, http.MethodPost, base+"/api/down/pay", "down-1", []byte(`{}`)).send(t, c)
			assert.Equal(t, http.StatusBadGateway, resp.status)
			assert.Equal(t, "handle_errors 502", string(resp.body))
			assert.Empty(t, resp.header.Get("Idempotent-Replayed"))
		}
		// A rejection is the handler's own answer, not an error route's.
		resp := signWire(t, "wrong-secret", http.MethodPost, base+"/api/down/pay", "down-2", []byte(`{}`)).send(t, c)
		assert.Equal(t, http.StatusUnauthorized, resp.status)
		assert.Equal(t, "signature_invalid", resp.problem(t))
	})

	t.Run("streaming", func(t *testing.T) {
		// A server-sent event reaches the client while the upstream is
		// still running (flushes pass through the recorder); the stream is
		// not stored, so a retry runs again.
		calls := up.count()
		wr := signWire(t, integrationSecret, http.MethodPost, base+"/api/events", "stream-1", []byte(`{}`))
		r, err := http.NewRequest(wr.method, wr.url, bytes.NewReader(wr.body))
		require.NoError(t, err)
		r.Header = wr.header
		resp, err := c.Do(r)
		require.NoError(t, err)
		defer resp.Body.Close()
		assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("data: first of call %d\n", calls+1), line)
		up.release <- struct{}{}
		_, _ = io.Copy(io.Discard, resp.Body)

		again := signWire(t, integrationSecret, http.MethodPost, base+"/api/events", "stream-1", []byte(`{}`))
		up.release <- struct{}{}
		got := again.send(t, c)
		assert.Equal(t, http.StatusOK, got.status)
		assert.Empty(t, got.header.Get("Idempotent-Replayed"))
		assert.Contains(t, string(got.body), fmt.Sprintf("data: second of call %d", calls+2))
	})

	// An edited Caddyfile: Caddy provisions the new handlers, then cleans
	// up the old ones; the stores go over to the new configuration.
	tester.InitServer(integrationCaddyfile(admin, httpPort, httpsPort, closedPort, storage, upAddr, 2), "caddyfile")
	require.False(t, t.Failed(), "Caddy did not reload")
	settle(t, c, base, "2")
	replay := afterReload(t, c, base, integrationSecret, up, first, stored)
	assert.Equal(t, "2", replay.header.Get("X-Config-Generation"), "the reloaded configuration answered")

	// The same Caddyfile, reloaded anyway (caddy reload --force).
	adapted := integrationCaddyfile(admin, httpPort, httpsPort, closedPort, storage, upAddr, 2)
	req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("http://localhost:%d/load", admin), strings.NewReader(adapted))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "text/caddyfile")
	req.Header.Set("Cache-Control", "must-revalidate")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	msg, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(msg))
	settle(t, c, base, "2")
	afterReload(t, c, base, integrationSecret, up, first, stored)

	// Metrics on Caddy's registry, served by the admin endpoint.
	mresp, err := http.Get(fmt.Sprintf("http://localhost:%d/metrics", admin))
	require.NoError(t, err)
	metricsText, _ := io.ReadAll(mresp.Body)
	_ = mresp.Body.Close()
	assert.Contains(t, string(metricsText), `replayguard_requests_total{code="nonce_replayed",outcome="rejected"}`)
}
