package metrics_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/bloom"
	"github.com/replayguard/replayguard/metrics"
	"github.com/replayguard/replayguard/nonce"
)

func TestCountersAndReRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	require.NoError(t, err)
	m.ObserveRequest("", time.Millisecond)
	m.ObserveRequest("nonce_replayed", time.Millisecond)
	m.ObserveStore("nonce", "add", time.Millisecond, errors.New("down"))
	m.ObserveFailOpen("nonce")
	m.ObserveIdempotency("replayed")

	// A reload registers again on the same registry: counters carry on.
	m2, err := metrics.New(reg)
	require.NoError(t, err)
	m2.ObserveRequest("", time.Millisecond)

	expected := `
# HELP replayguard_requests_total Requests finished by the guard, by outcome (accepted, rejected, idempotent_replay) and problem code.
# TYPE replayguard_requests_total counter
replayguard_requests_total{code="",outcome="accepted"} 2
replayguard_requests_total{code="nonce_replayed",outcome="rejected"} 1
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(expected), "replayguard_requests_total"))
	n, err := testutil.GatherAndCount(reg, "replayguard_store_errors_total", "replayguard_fail_open_total")
	require.NoError(t, err)
	assert.Equal(t, 2, n)
}

func TestBloomGauges(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	require.NoError(t, err)
	b, err := bloom.NewMemory(1000, 1e-6, time.Minute)
	require.NoError(t, err)
	now := time.Now()
	for i := 0; i < 100; i++ {
		require.NoError(t, b.Add(context.Background(), nonce.Entry{Scope: "k", Key: strings.Repeat("x", i+1), Timestamp: now, Expires: now.Add(time.Minute)}))
	}
	m.WatchBloom("nonce", b.Stats)
	m.WatchFunc("replayguard_local_shield_hits_total", "Replays answered without a store call.", true, func() float64 { return 7 })
	mfs, err := reg.Gather()
	require.NoError(t, err)
	found := map[string]float64{}
	for _, mf := range mfs {
		for _, metric := range mf.GetMetric() {
			v := metric.GetGauge().GetValue() + metric.GetCounter().GetValue()
			found[mf.GetName()] += v
		}
	}
	assert.Greater(t, found["replayguard_bloom_fill_ratio"], 0.0)
	assert.Greater(t, found["replayguard_bloom_estimated_false_positive_rate"], 0.0)
	assert.Equal(t, 100.0, found["replayguard_bloom_entries"])
	assert.Equal(t, 7.0, found["replayguard_local_shield_hits_total"])
}
