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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/bloom/bloomcore"
	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/redisstore"
	"github.com/replayguard/replayguard/redisstore/layout"
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

// commandCalls returns the calls of each command srv has run, INFO's own
// left out.
func commandCalls(t *testing.T, srv *redistest.Server) map[string]int64 {
	t.Helper()
	info, err := srv.Do("INFO", "commandstats")
	require.NoError(t, err)
	calls := redistest.CommandCalls(info)
	delete(calls, "info")
	return calls
}

// TestCrossShapeBloom runs the plugin under Yaegi in nonce.mode bloom
// beside a replayguard binary in Bloom mode with the same capacity,
// false-positive rate, window and key prefix, on one real Redis: they keep
// one set of filters.
func TestCrossShapeBloom(t *testing.T) {
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
nonce: {store: redis, mode: bloom, capacity: 100000, false_positive_rate: 1e-7}
idempotency: {store: redis}
redis: {addrs: ["%s"], key_prefix: xbloom}
`, ln.Addr(), keyID, secret, srv.Addr()))

	plugin := loadPlugin(t, pluginGoPath(t))
	logs := captureLogs(t)
	options := func(nonceOpts map[string]any, prefix string) map[string]any {
		o := pluginOptions()
		n := map[string]any{"store": "redis", "mode": "bloom", "capacity": "100000", "falsePositiveRate": "1e-7"}
		for k, v := range nonceOpts {
			n[k] = v
		}
		o["nonce"] = n
		o["idempotency"] = map[string]any{"store": "redis"}
		o["redis"] = map[string]any{"addrs": []any{srv.Addr()}, "keyPrefix": prefix}
		return o
	}
	ctx := context.Background()
	h, err := plugin.newHandler(ctx, up, options(nil, "xbloom"), "replayguard@file")
	require.NoError(t, err)

	t.Run("a nonce accepted by the plugin is a replay for the binary", func(t *testing.T) {
		before := up.hits.Load()
		for i := 0; i < 20; i++ {
			req := sign(t, http.MethodGet, "/v1/ping", nil, time.Now())
			rec := serve(h, req.request(nil))
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			status, _, b := bin.send(t, req, nil)
			assert.Equal(t, http.StatusUnauthorized, status)
			assert.Equal(t, "nonce_replayed", problemCodeOf(t, b))
		}
		assert.Equal(t, before+20, up.hits.Load())
		keys, err := srv.Do("KEYS", "xbloom:b:*")
		require.NoError(t, err)
		assert.NotEmpty(t, keys, "the filters are the Redis bitmaps of the layout")
		assert.LessOrEqual(t, commandCalls(t, srv)["set"], int64(1), "no exact-mode record was written (the one SET is the binary's record of its tagging)")
	})

	t.Run("a nonce accepted by the binary is a replay for the plugin", func(t *testing.T) {
		before := up.hits.Load()
		for i := 0; i < 20; i++ {
			req := sign(t, http.MethodGet, "/v1/ping", nil, time.Now())
			status, _, b := bin.send(t, req, nil)
			require.Equal(t, http.StatusOK, status, string(b))
			rec := serve(h, req.request(nil))
			assert.Equal(t, http.StatusUnauthorized, rec.Code)
			assert.Equal(t, "nonce_replayed", problemCode(t, rec))
		}
		assert.Equal(t, before+20, up.hits.Load())
	})

	t.Run("200 concurrent copies through the plugin: exactly one passes", func(t *testing.T) {
		// A burst of 200 on a loaded two-core machine outlasts the default
		// redis.timeout (200ms) in the interpreter: another middleware on
		// the same filters, given the time.
		o := options(nil, "xbloom")
		o["redis"].(map[string]any)["timeout"] = "10s"
		burst, err := plugin.newHandler(ctx, up, o, "burst@file")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, serve(burst, sign(t, http.MethodGet, "/v1/ping", nil, time.Now()).request(nil)).Code)
		req := sign(t, http.MethodGet, "/v1/ping", nil, time.Now())
		reqs := make([]*http.Request, 200)
		for i := range reqs {
			reqs[i] = req.request(nil)
		}
		before := up.hits.Load()
		started := time.Now()
		assert.Equal(t, map[string]int{"200": 1, "401 nonce_replayed": 199}, codesOf(burst, reqs))
		t.Logf("200 concurrent copies answered in %v", time.Since(started).Round(time.Millisecond))
		assert.Equal(t, before+1, up.hits.Load())
		status, _, b := bin.send(t, req, nil)
		assert.Equal(t, http.StatusUnauthorized, status)
		assert.Equal(t, "nonce_replayed", problemCodeOf(t, b))
	})

	t.Run("the local shield answers a replay flood without a Redis command", func(t *testing.T) {
		shielded, err := plugin.newHandler(ctx, up, options(map[string]any{"localShield": "true"}, "xbloom"), "shielded@file")
		require.NoError(t, err)

		// A nonce the shield has seen accepted.
		req := sign(t, http.MethodGet, "/v1/ping", nil, time.Now())
		require.Equal(t, http.StatusOK, serve(shielded, req.request(nil)).Code)
		calls := commandCalls(t, srv)
		for i := 0; i < 100; i++ {
			rec := serve(shielded, req.request(nil))
			require.Equal(t, http.StatusUnauthorized, rec.Code)
			require.Equal(t, "nonce_replayed", problemCode(t, rec))
		}
		assert.Equal(t, calls, commandCalls(t, srv), "INFO commandstats unchanged")

		// A nonce the binary accepted: the first repeat is one check in
		// Redis (the BITFIELD, with the bitmap's expiry when this instance
		// has not set it yet, in one round trip); the shield answers the
		// rest.
		req = sign(t, http.MethodGet, "/v1/ping", nil, time.Now())
		status, _, b := bin.send(t, req, nil)
		require.Equal(t, http.StatusOK, status, string(b))
		calls = commandCalls(t, srv)
		require.Equal(t, "nonce_replayed", problemCode(t, serve(shielded, req.request(nil))))
		after := commandCalls(t, srv)
		assert.Equal(t, calls["bitfield"]+1, after["bitfield"], "the first repeat is checked in Redis")
		for i := 0; i < 99; i++ {
			require.Equal(t, "nonce_replayed", problemCode(t, serve(shielded, req.request(nil))))
		}
		assert.Equal(t, after, commandCalls(t, srv), "the other repeats cost Redis nothing")
	})

	t.Run("Redis down: 503 store_unavailable, then recovery without a rebuild", func(t *testing.T) {
		srv.Kill()
		rec := serve(h, sign(t, http.MethodGet, "/v1/ping", nil, time.Now()).request(nil))
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
		assert.Equal(t, "store_unavailable", problemCode(t, rec))
		assert.Equal(t, "1", rec.Header().Get("Retry-After"))
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

	t.Run("a bucket past its target false-positive rate is logged", func(t *testing.T) {
		watched, err := plugin.newHandler(ctx, up, options(nil, "xwatch"), "watched@file")
		require.NoError(t, err)
		// Saturate every partition's first sub-filter of the bucket the
		// request falls in, its counter past its capacity, as bits no
		// instance's count accounted for would.
		ts := time.Now()
		b, err := redisstore.NewBloomNonce(nil, 100000, 1e-7, 6*time.Minute)
		require.NoError(t, err)
		capacity, m, k := b.SubFilter(0)
		bucket := bloomcore.BucketIndex(ts, bloomcore.DefaultBucketWidth)
		for part := 0; part < bloomcore.DefaultPartitions; part++ {
			key := layout.Keys{Prefix: "xwatch"}.Bloom(bloomcore.DefaultBucketWidth, bucket, part, 0, m, k)
			_, err := srv.Do("SETRANGE", key, "0", strings.Repeat("\xff", int(m/8)))
			require.NoError(t, err)
			_, err = srv.Do("BITFIELD", key, "SET", "u32", strconv.FormatUint(uint64(m), 10), strconv.FormatUint(uint64(capacity)+1, 10))
			require.NoError(t, err)
		}
		logs.take()
		rec := serve(watched, sign(t, http.MethodGet, "/v1/ping", nil, ts).request(nil))
		assert.Equal(t, "nonce_replayed", problemCode(t, rec), "a saturated filter takes every nonce for a replay")
		var grew, passed []string
		require.Eventually(t, func() bool {
			for _, l := range logs.take() {
				switch {
				case strings.Contains(l, "nonce Bloom filter grew"):
					grew = append(grew, l)
				case strings.Contains(l, "passed its target false-positive rate"):
					passed = append(passed, l)
				}
			}
			return len(grew) > 0 && len(passed) > 0
		}, 10*time.Second, 20*time.Millisecond)
		for _, l := range append(grew, passed...) {
			assert.Contains(t, l, "level=WARN")
			assert.Contains(t, l, "middleware=watched@file")
		}
		assert.Contains(t, passed[0], "target=1e-07")
		assert.Contains(t, grew[0], "subfilters=2")
	})
	logs.take()
}
