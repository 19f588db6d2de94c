package main_test

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// metricValue returns the value of the series name{labels} in a Prometheus
// text exposition, labels given as `k="v"` pairs in any order.
func metricValue(t *testing.T, exposition, name string, labels ...string) float64 {
	t.Helper()
	for _, line := range strings.Split(exposition, "\n") {
		if !strings.HasPrefix(line, name) || strings.HasPrefix(line, "#") {
			continue
		}
		rest := line[len(name):]
		series, value, ok := strings.Cut(rest, " ")
		if !ok {
			continue
		}
		if len(labels) == 0 && series != "" {
			continue
		}
		if len(labels) > 0 {
			if !strings.HasPrefix(series, "{") {
				continue
			}
			set := strings.Split(strings.Trim(series, "{}"), ",")
			if len(set) != len(labels) {
				continue
			}
			match := true
			for _, l := range labels {
				found := false
				for _, s := range set {
					if s == l {
						found = true
					}
				}
				match = match && found
			}
			if !match {
				continue
			}
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		require.NoError(t, err, line)
		return v
	}
	return 0
}

func scrape(t *testing.T, g *gateway) string {
	t.Helper()
	resp, err := http.Get("http://" + g.admin + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// TestMetricsAfterMixedRun: each counter moves by exactly what the run did.
func TestMetricsAfterMixedRun(t *testing.T) {
	up := newOpUpstream(t)
	g := startGateway(t, fmt.Sprintf(idemConfig, up.URL)+"admin_listen: 127.0.0.1:0\n")
	const secret = "secret-a-0123456789"
	now := time.Now()

	// 4 accepted GETs, each replayed once: 4 accepted, 4 nonce_replayed.
	for i := 0; i < 4; i++ {
		r := signed(t, g, "client-a", secret, http.MethodGet, "/v1/things", "", now)
		again := clone(t, r, "")
		require.Equal(t, 201, send(t, r).status)
		require.Equal(t, 401, send(t, again).status)
	}
	// 3 bad signatures.
	for i := 0; i < 3; i++ {
		require.Equal(t, 401, send(t, signed(t, g, "client-a", "wrong-secret", http.MethodGet, "/", "", now)).status)
	}
	// 2 operations, each retried twice: 2 executed (accepted), 4 replays.
	for i := 0; i < 2; i++ {
		key := uuid.NewString()
		for j := 0; j < 3; j++ {
			require.Equal(t, 201, send(t, signedWithKey(t, g, "client-a", secret, "/v1/charges", key, `{"n":1}`)).status)
		}
		// The same key with another body: reused.
		require.Equal(t, 422, send(t, signedWithKey(t, g, "client-a", secret, "/v1/charges", key, `{"n":2}`)).status)
	}
	// 1 missing key.
	require.Equal(t, 400, send(t, signedWithKey(t, g, "client-a", secret, "/v1/charges", "", `{}`)).status)
	// 1 upstream 503: released.
	require.Equal(t, 503, send(t, signedWithKey(t, g, "client-a", secret, "/flaky", uuid.NewString(), `{}`)).status)

	m := scrape(t, g)
	assert.Equal(t, 4.0+2+1, metricValue(t, m, "replayguard_requests_total", `outcome="accepted"`, `code=""`))
	assert.Equal(t, 4.0, metricValue(t, m, "replayguard_requests_total", `outcome="idempotent_replay"`, `code=""`))
	assert.Equal(t, 4.0, metricValue(t, m, "replayguard_requests_total", `outcome="rejected"`, `code="nonce_replayed"`))
	assert.Equal(t, 3.0, metricValue(t, m, "replayguard_requests_total", `outcome="rejected"`, `code="signature_invalid"`))
	assert.Equal(t, 2.0, metricValue(t, m, "replayguard_requests_total", `outcome="rejected"`, `code="idempotency_key_reused"`))
	assert.Equal(t, 1.0, metricValue(t, m, "replayguard_requests_total", `outcome="rejected"`, `code="idempotency_key_missing"`))
	assert.Equal(t, 3.0, metricValue(t, m, "replayguard_idempotency_events_total", `event="executed"`))
	assert.Equal(t, 4.0, metricValue(t, m, "replayguard_idempotency_events_total", `event="replayed"`))
	assert.Equal(t, 2.0, metricValue(t, m, "replayguard_idempotency_events_total", `event="reused"`))
	assert.Equal(t, 1.0, metricValue(t, m, "replayguard_idempotency_events_total", `event="released"`))
	// Nonce store calls: every request whose signature verified.
	assert.Equal(t, 8.0+6+2+1+1, metricValue(t, m, "replayguard_store_duration_seconds_count", `store="nonce"`, `op="add"`))
	// Claims: executed + replays + reused + released op; completes: the two stored.
	assert.Equal(t, 3.0+4+2, metricValue(t, m, "replayguard_store_duration_seconds_count", `store="idempotency"`, `op="claim"`))
	assert.Equal(t, 2.0, metricValue(t, m, "replayguard_store_duration_seconds_count", `store="idempotency"`, `op="complete"`))
	assert.Equal(t, 1.0, metricValue(t, m, "replayguard_store_duration_seconds_count", `store="idempotency"`, `op="release"`))
	assert.Zero(t, metricValue(t, m, "replayguard_store_errors_total", `store="nonce"`, `op="add"`))
	assert.Greater(t, metricValue(t, m, "go_goroutines"), 0.0)
}
