package main_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/redisstore/redistest"
	"github.com/replayguard/replayguard/signature/hmacsig"
)

const redisSecret = "redis-e2e-secret-0123456789"

// redisGatewayConfig is a gateway sharing Redis for nonces and idempotency.
func redisGatewayConfig(upstream, addr, mode, failMode, timeout string) string {
	return fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: %s
keys:
  - id: client-a
    secrets: [%s]
nonce: {store: redis, mode: %s}
idempotency: {store: redis, ttl: 1h, lease: 10s}
redis: {addrs: [%s], timeout: %s, key_prefix: e2e}
fail_mode: %s
`, upstream, redisSecret, mode, addr, timeout, failMode)
}

// redisSigned signs a request for the shared host name every gateway
// verifies, so that one signed request can be sent to any of them.
func redisSigned(t *testing.T, method, path, idemKey, body string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, "http://api.example"+path, strings.NewReader(body))
	require.NoError(t, err)
	if idemKey != "" {
		r.Header.Set("Idempotency-Key", idemKey)
	}
	require.NoError(t, (&hmacsig.Signer{KeyID: "client-a", Secret: []byte(redisSecret)}).Sign(r, []byte(body)))
	return r
}

// redisTo returns a copy of the signed request r addressed to gateway g, with
// the signed Host kept.
func redisTo(t *testing.T, g *gateway, r *http.Request, body string) *http.Request {
	t.Helper()
	c, err := http.NewRequest(r.Method, "http://"+g.addr+r.URL.RequestURI(), strings.NewReader(body))
	require.NoError(t, err)
	c.Header = r.Header.Clone()
	c.Host = r.Host
	return c
}

// redisTally sends reqs all at once and counts statuses (and problem codes).
func redisTally(t *testing.T, reqs []*http.Request) map[string]int {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: len(reqs)}, Timeout: 60 * time.Second}
	defer client.CloseIdleConnections()
	var mu sync.Mutex
	out := map[string]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			key := "error"
			if resp, err := client.Do(r); err == nil {
				b, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				key = fmt.Sprint(resp.StatusCode)
				if resp.Header.Get("Idempotent-Replayed") == "true" {
					key += " replayed"
				}
				if resp.StatusCode >= 400 {
					key += " " + redisProblemCode(b)
				}
			}
			mu.Lock()
			out[key]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return out
}

func redisProblemCode(b []byte) string {
	_, after, ok := strings.Cut(string(b), `"code":"`)
	if !ok {
		return ""
	}
	code, _, _ := strings.Cut(after, `"`)
	return code
}

// Four gateway processes share one Redis: of 1,000 concurrent sends of one
// signed request spread over them exactly one reaches the upstream, and 200
// concurrent requests with one Idempotency-Key execute once. In both nonce
// modes.
func TestRedisGatewaysShareOneRedis(t *testing.T) {
	for _, mode := range []string{"exact", "bloom"} {
		t.Run(mode, func(t *testing.T) {
			srv := redistest.Start(t)
			up := newUpstream(t)
			gws := make([]*gateway, 4)
			var wg sync.WaitGroup
			for i := range gws {
				wg.Add(1)
				go func() {
					defer wg.Done()
					gws[i] = startGateway(t, redisGatewayConfig(up.URL, srv.Addr(), mode, "closed", "5s"))
				}()
			}
			wg.Wait()

			orig := redisSigned(t, http.MethodPost, "/v1/transfer", uuid.NewString(), `{"to":"x"}`)
			reqs := make([]*http.Request, 1000)
			for i := range reqs {
				reqs[i] = redisTo(t, gws[i%len(gws)], orig, `{"to":"x"}`)
			}
			got := redisTally(t, reqs)
			t.Logf("%s: 1,000 sends of one signed request over 4 gateways: %v", mode, got)
			assert.Equal(t, map[string]int{"200": 1, "401 nonce_replayed": 999}, got)
			assert.Equal(t, int64(1), up.hits.Load(), "exactly one reaches the upstream")

			before := up.hits.Load()
			key := uuid.NewString()
			reqs = make([]*http.Request, 200)
			for i := range reqs {
				reqs[i] = redisTo(t, gws[i%len(gws)], redisSigned(t, http.MethodPost, "/v1/charges", key, `{"amount":100}`), `{"amount":100}`)
			}
			got = redisTally(t, reqs)
			t.Logf("%s: 200 requests with one Idempotency-Key over 4 gateways: %v", mode, got)
			assert.Equal(t, before+1, up.hits.Load(), "the upstream executes once")
			for k := range got {
				assert.Contains(t, []string{"200", "200 replayed", "409 idempotency_in_progress"}, k)
			}
			assert.Equal(t, 1, got["200"], "one execution answered live")
		})
	}
}

// Redis killed under load behind two gateways (fail_mode closed,
// appendfsync always): fresh requests get 503 store_unavailable with
// Retry-After, /readyz turns 503, a replay is never let through; once Redis
// is back the gateways serve again without a restart, /readyz is 200, and
// a request accepted before the kill is still a replay.
func TestRedisOutageFailClosed(t *testing.T) {
	srv := redistest.Start(t, redistest.WithPersistence())
	up := newUpstream(t)
	gws := []*gateway{
		startGateway(t, redisGatewayConfig(up.URL, srv.Addr(), "exact", "closed", "200ms")),
		startGateway(t, redisGatewayConfig(up.URL, srv.Addr(), "bloom", "closed", "200ms")),
	}
	accepted := redisSigned(t, http.MethodGet, "/v1/things", "", "")
	for _, g := range gws {
		r := redisSigned(t, http.MethodGet, "/v1/things", "", "")
		require.Equal(t, 200, send(t, redisTo(t, g, r, "")).status)
	}
	require.Equal(t, 200, send(t, redisTo(t, gws[0], accepted, "")).status)
	// The bloom gateway has its own keys: record the request there too.
	acceptedBloom := redisSigned(t, http.MethodGet, "/v1/things", "", "")
	require.Equal(t, 200, send(t, redisTo(t, gws[1], acceptedBloom, "")).status)

	var replaysLetThrough, unavailable, ok atomic.Int64
	var badRetryAfter atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				g := gws[(w+i)%2]
				var r *http.Request
				replay := i%3 == 0
				switch {
				case replay && g == gws[0]:
					r = redisTo(t, g, accepted, "")
				case replay:
					r = redisTo(t, g, acceptedBloom, "")
				default:
					r = redisTo(t, g, redisSigned(t, http.MethodGet, "/v1/things", "", ""), "")
				}
				resp, err := client.Do(r)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				switch resp.StatusCode {
				case 200:
					ok.Add(1)
					if replay {
						replaysLetThrough.Add(1)
					}
				case 503:
					unavailable.Add(1)
					if resp.Header.Get("Retry-After") != "1" {
						badRetryAfter.Add(1)
					}
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	srv.Kill()
	time.Sleep(300 * time.Millisecond)
	for _, g := range gws {
		r := send(t, redisTo(t, g, redisSigned(t, http.MethodGet, "/v1/things", "", ""), ""))
		assert.Equal(t, 503, r.status)
		assert.Equal(t, "store_unavailable", r.code)
		assert.Equal(t, "1", r.header.Get("Retry-After"))
		assert.Equal(t, 503, redisReadyz(t, g), "/readyz while Redis is down")
	}
	srv.Restart()
	restarted := time.Now()
	var recovered time.Duration
	for time.Since(restarted) < 10*time.Second {
		if send(t, redisTo(t, gws[0], redisSigned(t, http.MethodGet, "/v1/things", "", ""), "")).status == 200 &&
			send(t, redisTo(t, gws[1], redisSigned(t, http.MethodGet, "/v1/things", "", ""), "")).status == 200 {
			recovered = time.Since(restarted)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	require.NotZero(t, recovered, "the gateways serve again after Redis returns")
	t.Logf("fail_mode closed: %d requests answered 503 during the outage, %d passed; service back %v after Redis restarted",
		unavailable.Load(), ok.Load(), recovered.Round(time.Millisecond))
	assert.Positive(t, unavailable.Load())
	assert.Zero(t, replaysLetThrough.Load(), "no replay is let through")
	assert.Zero(t, badRetryAfter.Load(), "every 503 carries Retry-After: 1")
	for _, g := range gws {
		assert.Equal(t, 200, redisReadyz(t, g))
	}
	r := send(t, redisTo(t, gws[0], accepted, ""))
	assert.Equal(t, "nonce_replayed", r.code, "accepted before the kill, a replay after the restart")
	r = send(t, redisTo(t, gws[1], acceptedBloom, ""))
	assert.Equal(t, "nonce_replayed", r.code)
	for _, g := range gws {
		assert.NotContains(t, g.logs.String(), "panic")
	}
}

// Under fail_mode open a dead Redis lets verified requests through, counted
// in replayguard_fail_open_total, and /readyz stays 200 naming the
// degraded store.
func TestRedisOutageFailOpen(t *testing.T) {
	srv := redistest.Start(t)
	up := newUpstream(t)
	g := startGateway(t, redisGatewayConfig(up.URL, srv.Addr(), "exact", "open", "200ms"))
	require.Equal(t, 200, send(t, redisTo(t, g, redisSigned(t, http.MethodGet, "/v1/things", "", ""), "")).status)
	srv.Kill()
	for i := 0; i < 5; i++ {
		r := send(t, redisTo(t, g, redisSigned(t, http.MethodGet, "/v1/things", "", ""), ""))
		assert.Equal(t, 200, r.status, r.body)
	}
	r := send(t, redisTo(t, g, redisSigned(t, http.MethodPost, "/v1/charges", uuid.NewString(), "{}"), "{}"))
	assert.Equal(t, 200, r.status, "idempotency runs without a record: %s", r.body)
	resp, err := http.Get("http://" + g.admin + "/readyz")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Contains(t, string(body), "degraded")
	assert.GreaterOrEqual(t, metricValue(t, scrape(t, g), "replayguard_fail_open_total", `store="nonce"`), 5.0)

	srv.Restart()
	require.Eventually(t, func() bool {
		req := redisSigned(t, http.MethodGet, "/v1/things", "", "")
		first := send(t, redisTo(t, g, req, ""))
		return first.status == 200 && send(t, redisTo(t, g, req, "")).code == "nonce_replayed"
	}, 10*time.Second, 20*time.Millisecond, "replays are rejected again once Redis is back")
}

func redisReadyz(t *testing.T, g *gateway) int {
	t.Helper()
	resp, err := http.Get("http://" + g.admin + "/readyz")
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}
