package main_test

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/redisstore/redistest"
)

const (
	quotaSecretA = "quota-secret-a-0123456789"
	quotaSecretB = "quota-secret-b-0123456789"
)

// TestBinaryKeyShares: one key filling its share of a bounded embedded
// store gets 429 quota_exceeded; the other key is unaffected. In memory
// the idempotency store is bounded; on disk one share covers a key's
// nonces and records together.
func TestBinaryKeyShares(t *testing.T) {
	for _, c := range []struct {
		name, stores string
		// retryAfter checks the refusal's Retry-After, given the
		// gateway's metrics then; metric the quota counter's lines.
		retryAfter func(t *testing.T, seconds int, metrics string)
		metric     func(t *testing.T, metrics string)
	}{
		{
			name:   "memory",
			stores: "nonce: {store: memory}\nidempotency: {store: memory, memory_max_bytes: 16384}",
			retryAfter: func(t *testing.T, s int, metrics string) {
				if metricValue(t, metrics, "replayguard_idempotency_events_total", `event="store_error"`) == 1 {
					// The last response would have passed the share: it was
					// returned unstored, and its record, still in progress,
					// is the earliest to go, at the end of its lease.
					assert.Equal(t, 30, s, "until the unstored record's lease ends")
					return
				}
				assert.Equal(t, 3600, s, "the earliest record expires in 24h; capped at an hour")
			},
			metric: func(t *testing.T, m string) {
				assert.Contains(t, m, `replayguard_quota_exceeded_total{store="idempotency"} 1`)
				assert.Contains(t, m, `replayguard_quota_exceeded_total{store="nonce"} 0`)
			},
		},
		{
			name:   "disk",
			stores: "disk: {max_bytes: 16384}",
			retryAfter: func(t *testing.T, s int, _ string) {
				// The earliest entry is a lease (30s) whose completion passed
				// the share, or a nonce (the 5m window and its margin).
				assert.True(t, s >= 1 && s <= 360, "until the key's earliest entry expires, got %d", s)
			},
			metric: func(t *testing.T, m string) {
				assert.Regexp(t, `replayguard_quota_exceeded_total\{store="(nonce|idempotency)"\} 1`, m)
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			up := newUpstream(t)
			g := startGateway(t, fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: %s
keys:
  - {id: key-a, secrets: [%s]}
  - {id: key-b, secrets: [%s]}
%s
`, up.URL, quotaSecretA, quotaSecretB, c.stores))

			var refused *response
			accepted := 0
			for i := 0; i < 200 && refused == nil; i++ {
				resp := send(t, signed(t, g, "key-a", quotaSecretA, http.MethodPost, "/v1/charges", `{"amount":1}`, time.Now()))
				if resp.status == http.StatusOK {
					accepted++
					continue
				}
				refused = &resp
			}
			require.NotNil(t, refused, "key-a never passed its share")
			require.Greater(t, accepted, 1)
			require.Equal(t, http.StatusTooManyRequests, refused.status, refused.body)
			assert.Equal(t, "quota_exceeded", refused.code)
			ra, err := strconv.Atoi(refused.header.Get("Retry-After"))
			require.NoError(t, err)
			c.retryAfter(t, ra, scrape(t, g))
			assert.Equal(t, int64(accepted), up.hits.Load())

			for i := 0; i < accepted; i++ {
				resp := send(t, signed(t, g, "key-b", quotaSecretB, http.MethodPost, "/v1/charges", `{"amount":1}`, time.Now()))
				require.Equal(t, http.StatusOK, resp.status, "key-b keeps its share (request %d): %s", i, resp.body)
			}

			resp, err := http.Get("http://" + g.admin + "/metrics")
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			c.metric(t, string(b))
		})
	}
}

func readyz(t *testing.T, g *gateway) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + g.admin + "/readyz")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, string(b)
}

// TestBinaryWarnsOfRedisEvictionPolicy: a Redis that may evict nonces is
// logged at start and named on /readyz, which stays 200.
func TestBinaryWarnsOfRedisEvictionPolicy(t *testing.T) {
	up := newUpstream(t)
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"allkeys-lru", []string{"--maxmemory-policy", "allkeys-lru"}, `maxmemory-policy is "allkeys-lru"`},
		{"CONFIG renamed", []string{"--rename-command", "CONFIG", ""}, "maxmemory-policy could not be checked"},
		{"noeviction", nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.Start(t, redistest.WithArgs(tt.args...))
			g := startGateway(t, redisGatewayConfig(up.URL, srv.Addr(), "exact", "closed", "1s"))
			status, body := readyz(t, g)
			assert.Equal(t, http.StatusOK, status, body)
			assert.True(t, strings.HasPrefix(body, "ready\n"), body)
			if tt.want == "" {
				assert.NotContains(t, body, "warning")
				assert.NotContains(t, g.logs.String(), "maxmemory-policy")
				return
			}
			assert.Contains(t, body, "warning: redis "+tt.want)
			assert.Contains(t, g.logs.String(), strings.ReplaceAll(tt.want, `"`, `\"`), "logged as JSON")
			assert.Contains(t, g.logs.String(), `"level":"WARN"`)
		})
	}
}
