package reliability

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/redisstore/redistest"
)

// Several gateways share one Redis, in both nonce modes. Signed load is
// spread over them with the same signed request sent to a second gateway at
// the same instant and later, and operations retried (re-signed, same
// Idempotency-Key) on other gateways at the same instant and later. The
// upstream never sees a nonce twice nor runs a key twice, and every answer
// to a key equals its first byte for byte.
func TestGatewaysShareOneRedis(t *testing.T) {
	skipShort(t)
	p := current(t)
	for _, mode := range []string{"exact", "bloom"} {
		t.Run(mode, func(t *testing.T) {
			srv := redistest.Start(t)
			up := newUpstream(t)
			gws := startGateways(t, p.gateways, gatewayConfig{upstream: up.URL, nonceStore: "redis", nonceMode: mode,
				idemStore: "redis", redisAddrs: []string{srv.Addr()}, redisTimeout: "2s"})
			before := idleGoroutines(t, gws)
			mon := startMonitor(gws, time.Second)
			d := newDriver(gws, p.inFlight)

			d.run(context.Background(), p.rate, p.sharedFor)
			d.wait()
			samples := mon.finish()
			d.client.CloseIdleConnections()
			up.CloseClientConnections()
			after := settleGoroutines(t, gws, before, p.goroutineSlack, p.settleGoroutinesFor)

			results := d.snapshot()
			c := count(results)
			extraNonces, extraKeys, _, _ := up.seen()
			dups := len(only(results, func(r *result) bool { return r.op == opDupConcurrent || r.op == opDupLater }))
			retries := len(only(results, func(r *result) bool { return r.op == opRetryConcurrent || r.op == opRetryLater }))
			later := only(results, func(r *result) bool { return r.op == opRetryLater })
			lost := c.mismatched + len(only(later, func(r *result) bool { return r.label() != "201 replayed" }))
			report(t, p, row{
				scenario: "gateways share one Redis (" + mode + ")", gateways: len(gws),
				requests: c.requests, accepted: c.accepted, replayed: c.replayedResponses, rejected: c.rejected,
				faults:          fmt.Sprintf("%d duplicate sends, %d re-signed retries", dups, retries),
				replaysAccepted: max(extraNonces, c.replaysAccepted), recordsLost: fmt.Sprintf("%d of %d retried", lost, len(later)),
				peakHeap: peak(samples, time.Time{}, time.Now(), func(s sample) float64 { return s.heap }), goroutines: goroutineCells(before, after),
			})
			t.Logf("outcomes: %s", codes(c.byLabel))

			assert.Zero(t, c.errors, "transport errors")
			assert.Zero(t, extraNonces, "nonces the upstream saw more than once")
			assert.Zero(t, c.replaysAccepted, "nonces answered live more than once")
			assert.Zero(t, extraKeys, "keys the upstream ran more than once")
			assert.Zero(t, c.extraExecutions, "keys answered live more than once")
			assert.Zero(t, c.mismatched, "answers to a key that differ from its first")
			assert.Equal(t, int64(c.accepted), up.executions.Load(), "every live answer is one upstream execution")
			for label := range c.byLabel {
				assert.Contains(t, []string{"200", "201", "201 replayed", "401 nonce_replayed", "409 idempotency_in_progress"}, label)
			}
			dupsLater := only(results, func(r *result) bool { return r.op == opDupLater })
			assert.Equal(t, map[string]int{"401 nonce_replayed": len(dupsLater)}, count(dupsLater).byLabel, "signed requests sent again later")
			assert.Equal(t, map[string]int{"201 replayed": len(later)}, count(later).byLabel, "completed operations retried later")
			// Of the two copies of a concurrent duplicate, one runs and the
			// other is a replay.
			pairs := map[string]int{} // nonce -> live answers
			losers := map[string]int{}
			for _, r := range only(results, func(r *result) bool { return r.op == opDupConcurrent }) {
				n := pairs[r.req.nonce]
				if r.live() {
					n++
				} else {
					losers[r.label()]++
				}
				pairs[r.req.nonce] = n
			}
			notOne := 0
			for _, n := range pairs {
				if n != 1 {
					notOne++
				}
			}
			assert.Zero(t, notOne, "concurrent duplicates not answered live exactly once, of %d", len(pairs))
			assert.Equal(t, map[string]int{"401 nonce_replayed": len(pairs)}, losers, "the other copies")
			require.NotZero(t, c.accepted)
			for i, g := range gws {
				assert.LessOrEqual(t, after[i], before[i]+p.goroutineSlack, "%s goroutines after the load", g.name)
				assert.Zero(t, g.countLog(`"level":"ERROR"`), "%s logged errors", g.name)
			}
		})
	}
}
