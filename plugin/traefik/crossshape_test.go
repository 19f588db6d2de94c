package traefik_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/redisstore/redistest"
)

// binaryGateway is a running `replayguard serve` process.
type binaryGateway struct {
	addr string
	logs bytes.Buffer
	mu   sync.Mutex
}

func (g *binaryGateway) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.logs.Write(p)
}

// startBinary builds cmd/replayguard from the core module and serves cfg.
// The address is read from the start-up log line.
func startBinary(t *testing.T, cfg string) *binaryGateway {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "replayguard")
	build := exec.Command("go", "build", "-o", bin, "./cmd/replayguard")
	build.Dir = filepath.Join("..", "..")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	path := filepath.Join(dir, "replayguard.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))

	g := &binaryGateway{}
	cmd := exec.Command(bin, "serve", "--config", path)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = g.Write(append(append([]byte(nil), line...), '\n'))
			var rec map[string]any
			if json.Unmarshal(line, &rec) == nil && rec["msg"] == "replayguard serving" {
				addr, _ := rec["listen"].(string)
				ready <- addr
			}
		}
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			g.mu.Lock()
			t.Logf("replayguard logs:\n%s", g.logs.String())
			g.mu.Unlock()
		}
	})
	select {
	case g.addr = <-ready:
	case err := <-exited:
		t.Fatalf("replayguard exited at start: %v\n%s", err, g.logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("replayguard did not start")
	}
	return g
}

// send sends a signed request to the binary over HTTP, with the Host the
// request was signed for.
func (g *binaryGateway) send(t *testing.T, s signedRequest, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(s.method, "http://"+g.addr+s.target, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header = s.header.Clone()
	req.Host = "api.example.com"
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, b
}

func problemCodeOf(t *testing.T, b []byte) string {
	t.Helper()
	var p struct {
		Code string `json:"code"`
	}
	require.NoError(t, json.Unmarshal(b, &p), string(b))
	return p.Code
}

// TestCrossShape runs the plugin under Yaegi, talking to Redis through the
// standard-library RESP client, beside a replayguard binary using go-redis,
// on one real Redis: each shape sees the other's nonces and idempotency
// records.
func TestCrossShape(t *testing.T) {
	srv := redistest.Start(t)
	up := &upstream{}
	upSrv := &http.Server{Handler: up, ReadHeaderTimeout: 5 * time.Second}
	ln := listen(t)
	go func() { _ = upSrv.Serve(ln) }()
	t.Cleanup(func() { _ = upSrv.Close() })

	bin := startBinary(t, fmt.Sprintf(`listen: 127.0.0.1:0
upstream: http://%s
keys:
  - id: %s
    secrets: ["%s"]
timestamp: {tolerance: 5m, future_skew: 1m}
nonce: {store: redis}
idempotency: {store: redis}
redis: {addrs: ["%s"], key_prefix: xshape}
`, ln.Addr(), keyID, secret, srv.Addr()))

	plugin := loadPlugin(t, pluginGoPath(t))
	logs := captureLogs(t)
	opts := pluginOptions()
	opts["nonce"] = map[string]any{"store": "redis"}
	opts["idempotency"] = map[string]any{"store": "redis"}
	opts["redis"] = map[string]any{"addrs": []any{srv.Addr()}, "keyPrefix": "xshape"}
	h, err := plugin.newHandler(context.Background(), up, opts, "replayguard@file")
	require.NoError(t, err)

	t.Run("a nonce accepted by the plugin is a replay for the binary", func(t *testing.T) {
		before := up.hits.Load()
		req := sign(t, http.MethodGet, "/v1/ping", nil, time.Now())
		rec := serve(h, req.request(nil))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		status, _, b := bin.send(t, req, nil)
		assert.Equal(t, http.StatusUnauthorized, status)
		assert.Equal(t, "nonce_replayed", problemCodeOf(t, b))
		assert.Equal(t, before+1, up.hits.Load())
	})

	t.Run("a nonce accepted by the binary is a replay for the plugin", func(t *testing.T) {
		before := up.hits.Load()
		req := sign(t, http.MethodGet, "/v1/ping", nil, time.Now())
		status, _, b := bin.send(t, req, nil)
		require.Equal(t, http.StatusOK, status, string(b))
		rec := serve(h, req.request(nil))
		assert.Equal(t, http.StatusUnauthorized, rec.Code)
		assert.Equal(t, "nonce_replayed", problemCode(t, rec))
		assert.Equal(t, before+1, up.hits.Load())
	})

	t.Run("an idempotency record written by the plugin is replayed by the binary", func(t *testing.T) {
		before := up.hits.Load()
		body := []byte(`{"amount":100}`)
		key := uuid.NewString()
		rec := serve(h, signWithKey(t, http.MethodPost, "/v1/charges", body, time.Now(), key).request(body))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		status, hdr, b := bin.send(t, signWithKey(t, http.MethodPost, "/v1/charges", body, time.Now(), key), body)
		require.Equal(t, http.StatusOK, status, string(b))
		assert.Equal(t, "true", hdr.Get(idempotency.ReplayedHeader))
		assert.Equal(t, rec.Body.Bytes(), b, "the stored body, byte for byte")
		assert.Equal(t, before+1, up.hits.Load())

		other := []byte(`{"amount":5}`)
		status, _, b = bin.send(t, signWithKey(t, http.MethodPost, "/v1/charges", other, time.Now(), key), other)
		assert.Equal(t, http.StatusUnprocessableEntity, status)
		assert.Equal(t, "idempotency_key_reused", problemCodeOf(t, b))
	})

	t.Run("an idempotency record written by the binary is replayed by the plugin", func(t *testing.T) {
		before := up.hits.Load()
		body := []byte(`{"amount":7}`)
		key := uuid.NewString()
		status, _, b := bin.send(t, signWithKey(t, http.MethodPost, "/v1/charges", body, time.Now(), key), body)
		require.Equal(t, http.StatusOK, status, string(b))
		rec := serve(h, signWithKey(t, http.MethodPost, "/v1/charges", body, time.Now(), key).request(body))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		assert.Equal(t, "true", rec.Header().Get(idempotency.ReplayedHeader))
		assert.Equal(t, b, rec.Body.Bytes(), "the stored body, byte for byte")
		assert.Equal(t, before+1, up.hits.Load())

		other := []byte(`{"amount":8}`)
		rec = serve(h, signWithKey(t, http.MethodPost, "/v1/charges", other, time.Now(), key).request(other))
		assert.Equal(t, http.StatusUnprocessableEntity, rec.Code)
		assert.Equal(t, "idempotency_key_reused", problemCode(t, rec))
	})

	t.Run("Redis down: the plugin fails closed, then recovers without a rebuild", func(t *testing.T) {
		srv.Kill()
		rec := serve(h, sign(t, http.MethodGet, "/v1/ping", nil, time.Now()).request(nil))
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
		assert.Equal(t, "store_unavailable", problemCode(t, rec))
		// On the stream Traefik logs at ERROR, which its default level
		// shows.
		var failed []string
		for _, l := range logs.take() {
			if strings.Contains(l, "level=ERROR") && strings.Contains(l, "store failed") {
				failed = append(failed, l)
			}
		}
		assert.NotEmpty(t, failed, "a store failure is logged at ERROR")
		srv.Restart()
		require.Eventually(t, func() bool {
			return serve(h, sign(t, http.MethodGet, "/v1/ping", nil, time.Now()).request(nil)).Code == http.StatusOK
		}, 10*time.Second, 50*time.Millisecond)
	})
	logs.take()
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return ln
}
