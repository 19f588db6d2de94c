package traefik_test

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/redisstore/redistest"
)

// With redis.masterName the plugin's client, under Yaegi, asks the
// Sentinels for the master and follows Sentinel when the master dies: a
// nonce accepted before the failover is still a replay after it, in both
// nonce modes, and requests pass again without a rebuild.
func TestSentinelUnderYaegi(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	sentinel := redistest.StartSentinel(t, "rgmaster", master)
	require.Eventually(t, func() bool { return replica.Info("master_link_status") == "up" }, 30*time.Second, 50*time.Millisecond, "the replica syncs")

	plugin := loadPlugin(t, pluginGoPath(t))
	logs := captureLogs(t)
	ctx := context.Background()
	handler := func(mode string) http.Handler {
		o := pluginOptions()
		o["nonce"] = map[string]any{"store": "redis", "mode": mode, "capacity": "100000"}
		o["idempotency"] = map[string]any{"store": "redis"}
		o["redis"] = map[string]any{"addrs": []any{"127.0.0.1:1", sentinel.Addr()}, "masterName": "rgmaster", "keyPrefix": "sent"}
		h, err := plugin.newHandler(ctx, &upstream{}, o, "sentinel-"+mode+"@file")
		require.NoError(t, err)
		return h
	}
	handlers := []http.Handler{handler("exact"), handler("bloom")}

	// Sentinel may have failed over already on a busy machine: ask it.
	addr, err := sentinel.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "rgmaster")
	require.NoError(t, err)
	if strings.ReplaceAll(addr, "\n", ":") != master.Addr() {
		master, replica = replica, master
	}
	before := make([]signedRequest, len(handlers))
	for i, h := range handlers {
		before[i] = sign(t, http.MethodGet, "/v1/ping", nil, time.Now())
		require.Equal(t, http.StatusOK, serve(h, before[i].request(nil)).Code)
	}
	keys, err := master.Do("KEYS", "sent:*")
	require.NoError(t, err)
	assert.Contains(t, keys, "sent:n:{", "the exact nonce is on the master")
	assert.Contains(t, keys, "sent:b:{", "the Bloom filter is on the master")
	require.Eventually(t, func() bool {
		k, err := replica.Do("KEYS", "sent:*")
		return err == nil && sortedLines(k) == sortedLines(keys)
	}, 30*time.Second, 20*time.Millisecond, "the replica has them")

	master.Kill()
	killed := time.Now()
	for i, h := range handlers {
		var rec int
		for time.Since(killed) < 60*time.Second {
			rec = serve(h, before[i].request(nil)).Code
			if rec != http.StatusServiceUnavailable {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		require.Equal(t, http.StatusUnauthorized, rec, "a nonce accepted before the failover is a replay after it")
		assert.Equal(t, http.StatusOK, serve(h, sign(t, http.MethodGet, "/v1/ping", nil, time.Now()).request(nil)).Code)
	}
	role, err := replica.Do("ROLE")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(role, "master"), role)
	t.Logf("the plugin followed the promotion %v after the kill", time.Since(killed).Round(time.Millisecond))
	logs.take()
}

// sortedLines returns the lines of s sorted.
func sortedLines(s string) string {
	lines := strings.Split(s, "\n")
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
