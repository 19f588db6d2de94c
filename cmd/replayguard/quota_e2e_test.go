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

// TestBinaryKeyShares: one key filling its share of the memory
// idempotency store gets 429 quota_exceeded; the other key is unaffected.
func TestBinaryKeyShares(t *testing.T) {
	up := newUpstream(t)
	g := startGateway(t, fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: %s
keys:
  - {id: key-a, secrets: [%s]}
  - {id: key-b, secrets: [%s]}
idempotency: {memory_max_bytes: 16384}
`, up.URL, quotaSecretA, quotaSecretB))

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
	assert.Equal(t, 3600, ra, "the earliest record expires in 24h; capped at an hour")
	assert.Equal(t, int64(accepted), up.hits.Load())

	for i := 0; i < accepted; i++ {
		resp := send(t, signed(t, g, "key-b", quotaSecretB, http.MethodPost, "/v1/charges", `{"amount":1}`, time.Now()))
		require.Equal(t, http.StatusOK, resp.status, "key-b keeps its share (request %d): %s", i, resp.body)
	}

	resp, err := http.Get("http://" + g.admin + "/metrics")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	assert.Contains(t, string(b), `replayguard_quota_exceeded_total{store="idempotency"} 1`)
	assert.Contains(t, string(b), `replayguard_quota_exceeded_total{store="nonce"} 0`)
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
