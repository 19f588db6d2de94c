package reliability

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Sustained signed load on one gateway with the memory stores: the exact
// nonce store capped by max_entries, idempotency on. The freshness window
// and the idempotency TTL are shortened so that records expire and are
// reclaimed within the warm-up; from then on the stores hold a steady
// number of records. The heap (go_memstats_heap_inuse_bytes, sampled each
// second) at the end stays within soakHeapFactor × its level just after
// the warm-up plus soakHeapSlack, and once the load stops and the
// connections close, the goroutine count returns to its idle level.
func TestSoak(t *testing.T) {
	skipShort(t)
	t.Parallel()
	p := current(t)
	up := newUpstream(t)
	ttl, err := time.ParseDuration(p.soakTTL)
	require.NoError(t, err)
	gws := startGateways(t, 1, gatewayConfig{upstream: up.URL, maxEntries: p.soakMaxEntries,
		tolerance: p.soakTolerance, idemTTL: p.soakTTL, lease: "10s"})
	g := gws[0]
	before := idleGoroutines(t, gws)
	mon := startMonitor(gws, time.Second)
	d := newDriver(gws, p.inFlight)
	d.retryWithin = ttl / 2

	start := time.Now()
	d.run(context.Background(), p.soakRate, p.soakWarmup+p.soakFor)
	d.wait()
	end := time.Now()
	samples := mon.finish()
	d.client.CloseIdleConnections()
	up.CloseClientConnections()
	after := settleGoroutines(t, gws, before, p.goroutineSlack, p.settleGoroutinesFor)

	heap := func(s sample) float64 { return s.heap }
	rss := func(s sample) float64 { return s.rss }
	warm := start.Add(p.soakWarmup)
	quarter := p.soakFor / 4
	heapWarm := peak(samples, warm, warm.Add(quarter), heap)
	heapEnd := peak(samples, end.Add(-quarter), end, heap)
	heapPeak := peak(samples, start, end, heap)
	rssWarm, rssEnd := peak(samples, warm, warm.Add(quarter), rss), peak(samples, end.Add(-quarter), end, rss)
	bound := p.soakHeapFactor*heapWarm + p.soakHeapSlack

	c := count(d.snapshot())
	extraNonces, extraKeys, _, _ := up.seen()
	report(t, p, row{
		scenario: "soak, memory stores", gateways: 1,
		requests: c.requests, accepted: c.accepted, replayed: c.replayedResponses, rejected: c.rejected,
		faults: fmt.Sprintf("%s at %.0f req/s; heap %.1f MiB after warm-up, %.1f MiB at the end (bound %.1f); RSS %.1f → %.1f MiB",
			seconds(end.Sub(start)), p.soakRate, mib(heapWarm), mib(heapEnd), mib(bound), mib(rssWarm), mib(rssEnd)),
		recovery:        "—",
		replaysAccepted: max(extraNonces, c.replaysAccepted),
		recordsLost:     fmt.Sprintf("%d mismatched", c.mismatched),
		peakHeap:        heapPeak,
		goroutines:      goroutineCells(before, after),
	})
	t.Logf("outcomes: %s", codes(c.byLabel))

	require.Positive(t, heapWarm, "heap samples after the warm-up")
	assert.LessOrEqual(t, heapEnd, bound, "heap at the end against its level after the warm-up")
	assert.LessOrEqual(t, after[0], before[0]+p.goroutineSlack, "goroutines once the load stopped")
	assert.Zero(t, c.errors, "transport errors")
	assert.Zero(t, c.rejected["store_unavailable"], "max_entries reached: the store did not reclaim")
	assert.Zero(t, extraNonces, "nonces the upstream saw more than once")
	assert.Zero(t, c.replaysAccepted)
	assert.Zero(t, extraKeys, "keys the upstream ran more than once")
	assert.Zero(t, c.mismatched, "answers to a key that differ from its first")
	for label := range c.byLabel {
		assert.Contains(t, []string{"200", "201", "201 replayed", "401 nonce_replayed", "401 timestamp_expired", "409 idempotency_in_progress"}, label)
	}
	assert.Zero(t, g.countLog(`"level":"ERROR"`), "gateway errors logged")
}
