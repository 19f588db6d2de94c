package main_test

import (
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/replayguard/replayguard/config"
)

const (
	traefikExample = "../../examples/traefik/forward-auth"
	nginxExample   = "../../examples/nginx"
)

// TestTraefikForwardAuthExample checks that the example's replayguard.yaml
// is a valid forward-auth configuration and that dynamic.yml sends its
// checks to the address replayguard listens on, with the options the
// endpoint relies on.
func TestTraefikForwardAuthExample(t *testing.T) {
	t.Setenv("CLIENT_A_SECRET", "example-secret-0123456789")
	cfg, err := config.Load(filepath.Join(traefikExample, "replayguard.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, cfg.AuthListen)
	assert.Empty(t, cfg.Upstream, "Traefik routes; replayguard only answers checks")

	var static struct {
		EntryPoints map[string]struct {
			Address string `yaml:"address"`
		} `yaml:"entryPoints"`
		Providers struct {
			File struct {
				Filename string `yaml:"filename"`
			} `yaml:"file"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join(traefikExample, "traefik.yml"), &static)
	assert.Equal(t, "dynamic.yml", static.Providers.File.Filename)
	require.Contains(t, static.EntryPoints, "web")

	var dynamic struct {
		HTTP struct {
			Routers map[string]struct {
				EntryPoints []string `yaml:"entryPoints"`
				Middlewares []string `yaml:"middlewares"`
				Service     string   `yaml:"service"`
			} `yaml:"routers"`
			Middlewares map[string]struct {
				ForwardAuth *struct {
					Address             string   `yaml:"address"`
					TrustForwardHeader  *bool    `yaml:"trustForwardHeader"`
					ForwardBody         bool     `yaml:"forwardBody"`
					MaxBodySize         int64    `yaml:"maxBodySize"`
					AuthResponseHeaders []string `yaml:"authResponseHeaders"`
				} `yaml:"forwardAuth"`
			} `yaml:"middlewares"`
			Services map[string]any `yaml:"services"`
		} `yaml:"http"`
	}
	readYAML(t, filepath.Join(traefikExample, "dynamic.yml"), &dynamic)
	mw, ok := dynamic.HTTP.Middlewares["replayguard"]
	require.True(t, ok, "a middleware named replayguard")
	fa := mw.ForwardAuth
	require.NotNil(t, fa, "it is a forwardAuth middleware")
	u, err := url.Parse(fa.Address)
	require.NoError(t, err)
	assert.Equal(t, "http", u.Scheme)
	assert.Equal(t, cfg.AuthListen, u.Host, "dynamic.yml names the address replayguard.yaml listens on")
	require.NotNil(t, fa.TrustForwardHeader)
	assert.False(t, *fa.TrustForwardHeader, "a client's X-Forwarded-* must never describe the request")
	assert.True(t, fa.ForwardBody, "hmac signs the body")
	assert.GreaterOrEqual(t, fa.MaxBodySize, cfg.MaxBodyBytes)
	assert.Contains(t, fa.AuthResponseHeaders, "X-Replayguard-Key-Id")
	for name, r := range dynamic.HTTP.Routers {
		assert.Contains(t, r.Middlewares, "replayguard", "router %s", name)
		assert.Contains(t, dynamic.HTTP.Services, r.Service, "router %s", name)
		for _, ep := range r.EntryPoints {
			assert.Contains(t, static.EntryPoints, ep, "router %s", name)
		}
	}
	assertTrusts(t, cfg.TrustedProxies, u.Hostname())
}

// TestNginxExample checks the example's replayguard.yaml and that nginx.conf
// sends its auth subrequests to it with the headers the endpoint reads.
func TestNginxExample(t *testing.T) {
	t.Setenv("CLIENT_A_SECRET", "example-secret-0123456789")
	cfg, err := config.Load(filepath.Join(nginxExample, "replayguard.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, cfg.AuthListen)
	assert.Empty(t, cfg.Upstream)
	b, err := os.ReadFile(filepath.Join(nginxExample, "nginx.conf"))
	require.NoError(t, err)
	conf := string(b)
	for _, directive := range []string{
		"proxy_pass http://" + cfg.AuthListen + ";",
		"internal;",
		"auth_request /_replayguard;",
		"proxy_pass_request_body off;",
		"proxy_set_header X-Forwarded-Method $request_method;",
		"proxy_set_header X-Forwarded-Uri $request_uri;",
		"proxy_set_header X-Forwarded-Host $http_host;",
		"proxy_set_header X-Forwarded-Proto $scheme;",
		"auth_request_set $replayguard_key_id $upstream_http_x_replayguard_key_id;",
	} {
		assert.Contains(t, conf, directive)
	}
	host, _, err := net.SplitHostPort(cfg.AuthListen)
	require.NoError(t, err)
	assertTrusts(t, cfg.TrustedProxies, host)
}

// assertTrusts checks that a proxy on the same host as replayguard, which
// connects from ip, is in trusted_proxies.
func assertTrusts(t *testing.T, trusted []string, ip string) {
	t.Helper()
	peer := net.ParseIP(ip)
	require.NotNil(t, peer, ip)
	for _, e := range trusted {
		if _, n, err := net.ParseCIDR(e); err == nil && n.Contains(peer) || net.ParseIP(e).Equal(peer) {
			return
		}
	}
	t.Errorf("trusted_proxies %v does not hold %s, where the proxy connects from", trusted, ip)
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, v), path)
}

// TestNginxAuthRequest runs the nginx example in a real nginx in front of
// a real replayguard and an upstream.
func TestNginxAuthRequest(t *testing.T) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		// Debian installs it outside a non-root user's PATH.
		nginx, err = exec.LookPath("/usr/sbin/nginx")
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("nginx not installed: make deps installs it")
		}
		t.Skip("nginx not installed (apt-get install -y nginx, or make deps)")
	}
	up := newUpstream(t)
	g := startGateway(t, faAuthOnlyConfig)
	auth := authAddr(t, g)
	front := freeAddr(t)

	b, err := os.ReadFile(filepath.Join(nginxExample, "nginx.conf"))
	require.NoError(t, err)
	conf := strings.NewReplacer(
		"127.0.0.1:8080", front,
		"127.0.0.1:9091", auth,
		"127.0.0.1:9000", strings.TrimPrefix(up.URL, "http://"),
	).Replace(string(b))
	dir := t.TempDir()
	// Keep nginx's files in the test's directory.
	conf = strings.Replace(conf, "http {", "http {\n"+
		"    access_log off;\n"+
		"    client_body_temp_path "+filepath.Join(dir, "body")+";\n"+
		"    proxy_temp_path "+filepath.Join(dir, "proxy")+";\n"+
		"    fastcgi_temp_path "+filepath.Join(dir, "fastcgi")+";\n"+
		"    uwsgi_temp_path "+filepath.Join(dir, "uwsgi")+";\n"+
		"    scgi_temp_path "+filepath.Join(dir, "scgi")+";\n", 1)
	confPath := filepath.Join(dir, "nginx.conf")
	require.NoError(t, os.WriteFile(confPath, []byte(conf), 0o600))
	cmd := exec.Command(nginx, "-p", dir, "-c", confPath, "-e", "stderr",
		"-g", "daemon off; master_process off; pid "+filepath.Join(dir, "nginx.pid")+";")
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("nginx logs:\n%s", logs.String())
		}
	})
	waitForTCP(t, front, exited, logs)

	t.Run("signed request reaches the upstream with the principal", func(t *testing.T) {
		orig := signedTo(t, front, http.MethodGet, "/v1/things?limit=10", "")
		// What a client adds cannot change what is verified nor who the
		// upstream thinks signed.
		orig.Header.Set("X-Forwarded-Uri", "/v1/elsewhere")
		orig.Header.Set("X-Replayguard-Key-Id", "mallory")
		replay := clone(t, orig, "")
		r := send(t, orig)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.Equal(t, `upstream saw GET /v1/things?limit=10 ""`, r.body)
		assert.Equal(t, "client-a", r.header.Get("X-Upstream-Key-Id"))
		assert.Equal(t, int64(1), up.hits.Load())

		r = send(t, replay)
		assert.Equal(t, http.StatusUnauthorized, r.status, "nginx relays the 401 of nonce_replayed")
		assert.Equal(t, int64(1), up.hits.Load())
	})

	t.Run("tampered target", func(t *testing.T) {
		orig := signedTo(t, front, http.MethodGet, "/v1/things?limit=10", "")
		req, err := http.NewRequest(http.MethodGet, "http://"+front+"/v1/things?limit=10000", nil)
		require.NoError(t, err)
		req.Header = orig.Header.Clone()
		r := send(t, req)
		assert.Equal(t, http.StatusUnauthorized, r.status)
		assert.Equal(t, int64(1), up.hits.Load())
	})

	t.Run("a signed body cannot be verified: auth_request sends none", func(t *testing.T) {
		r := send(t, signedTo(t, front, http.MethodPost, "/v1/charges", `{"amount":1}`))
		assert.Equal(t, http.StatusUnauthorized, r.status)
		assert.Equal(t, int64(1), up.hits.Load())
	})

	t.Run("the auth location is internal", func(t *testing.T) {
		resp, err := http.Get("http://" + front + "/_replayguard")
		require.NoError(t, err)
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	})

	m := scrape(t, g)
	assert.Equal(t, 1.0, metricValue(t, m, "replayguard_requests_total", `outcome="accepted"`, `code=""`))
	assert.Equal(t, 1.0, metricValue(t, m, "replayguard_requests_total", `outcome="rejected"`, `code="nonce_replayed"`))
	assert.Equal(t, 2.0, metricValue(t, m, "replayguard_requests_total", `outcome="rejected"`, `code="signature_invalid"`))
}

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func waitForTCP(t *testing.T, addr string, exited <-chan error, logs *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("nginx exited at start: %v\n%s", err, logs.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			_ = c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nginx did not listen on %s:\n%s", addr, logs.String())
}
