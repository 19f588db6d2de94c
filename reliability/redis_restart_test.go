package reliability

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/redisstore/redistest"
)

// Redis (append-only file, fsync always) is killed under load and started
// again on its port, with fail_mode closed. During the outage every request
// is answered 503 store_unavailable, never 2xx; the gateways serve again
// without being restarted; no nonce accepted before the crash is accepted
// after it, and every operation completed before the crash gets its stored
// response back, byte for byte.
//
// What is guaranteed: a response the client received before the kill was
// recorded with fsync before it was sent, so it survives. A request in
// flight at the kill may have run upstream while its record stayed in
// progress (its completion failed); a retry then gets 409 until the lease
// ends and runs again after that. Those are counted apart ("in flight at
// the kill") and the retries here come within the lease.
func TestRedisRestartUnderLoad(t *testing.T) {
	skipShort(t)
	p := current(t)
	for _, mode := range p.restartModes {
		t.Run(mode, func(t *testing.T) {
			srv := redistest.Start(t, redistest.WithPersistence())
			up := newUpstream(t)
			gws := startGateways(t, p.gateways, gatewayConfig{upstream: up.URL, nonceStore: "redis", nonceMode: mode,
				idemStore: "redis", redisAddrs: []string{srv.Addr()}, redisTimeout: "500ms"})
			before := idleGoroutines(t, gws)
			mon := startMonitor(gws, time.Second)
			d := newDriver(gws, p.inFlight)

			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				d.run(ctx, p.rate, time.Hour)
			}()
			time.Sleep(p.restartBefore)
			killAt := time.Now()
			srv.Kill()
			killed := time.Now()
			time.Sleep(p.outage)
			restartAt := time.Now()
			srv.Restart()
			restarted := time.Now()
			time.Sleep(p.restartAfter)
			cancel()
			<-done
			d.wait()
			load := d.snapshot()

			replays, checked, lost := d.verifyAfter(killAt)
			samples := mon.finish()
			d.client.CloseIdleConnections()
			up.CloseClientConnections()
			after := settleGoroutines(t, gws, before, p.goroutineSlack, p.settleGoroutinesFor)

			c := count(d.snapshot())
			extraNonces, extraKeys, _, _ := up.seen()
			outage := only(load, func(r *result) bool { return !r.start.Before(killed) && r.end.Before(restartAt) })
			inFlight := only(load, func(r *result) bool { return r.live() && r.start.Before(killed) && !r.end.Before(killAt) })
			unavailable := only(load, func(r *result) bool { return r.code == "store_unavailable" })
			var window time.Duration
			if len(unavailable) > 0 {
				first, last := unavailable[0].start, unavailable[0].end
				for _, r := range unavailable {
					first, last = minTime(first, r.start), maxTime(last, r.end)
				}
				window = last.Sub(first)
			}
			// 503s outside the outage: Redis too slow before the kill, or
			// a gateway not yet reconnected after the restart.
			early := only(unavailable, func(r *result) bool { return r.end.Before(killAt) })
			late := only(unavailable, func(r *result) bool { return !r.start.Before(restarted) })
			var lastLate time.Duration
			for _, r := range late {
				lastLate = max(lastLate, r.end.Sub(restarted))
			}
			// Recovery: until every gateway has answered a request sent
			// after Redis was back with a live 2xx.
			var recovery time.Duration
			for i, g := range gws {
				var first time.Time
				for _, r := range load {
					if r.gw == i && r.live() && !r.start.Before(restarted) && (first.IsZero() || r.end.Before(first)) {
						first = r.end
					}
				}
				require.False(t, first.IsZero(), "%s served nothing after Redis came back", g.name)
				recovery = max(recovery, first.Sub(restarted))
			}

			report(t, p, row{
				scenario: "Redis killed and restarted (" + mode + ")", gateways: len(gws),
				requests: c.requests, accepted: c.accepted, replayed: c.replayedResponses, rejected: c.rejected,
				faults: fmt.Sprintf("SIGKILL, down %s (restart took %s); %d answered 503 over %s",
					seconds(restartAt.Sub(killAt)), seconds(restarted.Sub(restartAt)), len(unavailable), seconds(window)),
				recovery:        recoveryCell(recovery, len(late), lastLate),
				replaysAccepted: max(extraNonces, c.replaysAccepted),
				recordsLost:     fmt.Sprintf("%d of %d", lost, checked),
				peakHeap:        peak(samples, time.Time{}, time.Now(), func(s sample) float64 { return s.heap }),
				goroutines:      goroutineCells(before, after),
			})
			t.Logf("outage: %d requests sent and answered while Redis was down: %s; %d live answers in flight at the kill; "+
				"503s before the kill %d, sent after the restart %d (the last ending %s after it; Redis forks since the restart %s); "+
				"verification: %d pre-crash requests re-sent, %d pre-crash records retried",
				len(outage), codes(count(outage).byLabel), len(inFlight), len(early), len(late), seconds(lastLate), srv.Info("total_forks"),
				len(only(d.snapshot(), func(r *result) bool { return r.op == opVerifyNonce })), checked)
			for _, g := range gws {
				if n := g.countLog(`"level":"ERROR"`); n > 0 {
					t.Logf("%s: %d errors logged, the last: %s", g.name, n, lastLine(g.logs.String(), `"level":"ERROR"`))
				}
			}

			require.NotEmpty(t, outage, "requests were sent during the outage")
			assert.Equal(t, map[string]int{"503 store_unavailable": len(outage)}, count(outage).byLabel, "answers while Redis was down")
			assert.Zero(t, len(only(unavailable, func(r *result) bool { return r.retryAfter != "1" })), "503s without Retry-After: 1")
			assert.Zero(t, c.errors, "transport errors")
			assert.Zero(t, replays, "requests accepted before the crash, accepted again after it")
			assert.Zero(t, extraNonces, "nonces the upstream saw more than once")
			assert.Zero(t, c.replaysAccepted, "nonces answered live more than once")
			assert.Zero(t, extraKeys, "keys the upstream ran more than once")
			assert.Zero(t, lost, "records completed before the crash that did not replay byte for byte")
			assert.Zero(t, c.mismatched, "answers to a key that differ from its first")
			assert.Positive(t, checked, "records completed before the crash")
			assert.LessOrEqual(t, recovery, p.restartRecoveryBound, "time to serve again after Redis restarted")
			for label := range c.byLabel {
				assert.Contains(t, []string{"200", "201", "201 replayed", "401 nonce_replayed", "409 idempotency_in_progress", "503 store_unavailable"}, label)
			}
		})
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// recoveryCell reports how long after the restart every gateway served
// again, and when the last 503 of a request sent after the restart came.
func recoveryCell(recovery time.Duration, late int, lastLate time.Duration) string {
	if late == 0 {
		return seconds(recovery) + ", no 503 after the restart"
	}
	return fmt.Sprintf("%s, %d 503s after the restart (the last at +%s)", seconds(recovery), late, seconds(lastLate))
}

// lastLine returns the last line of logs containing s.
func lastLine(logs, s string) string {
	lines := strings.Split(logs, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], s) {
			return lines[i]
		}
	}
	return ""
}
