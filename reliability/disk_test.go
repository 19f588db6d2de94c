package reliability

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Operation kinds of the disk store's kill scenario.
const (
	opHeld        = "held"         // an operation held at the upstream when the gateway is killed
	opUnackedSoon = "unacked-soon" // after the restart: an operation left unanswered by the kill, retried at once
	opUnackedLate = "unacked-late" // the same, retried once the lease taken before the kill has ended
)

// One gateway on the disk store (nonces and idempotency records, fsync on)
// is killed with SIGKILL under load and started again on the same
// configuration file: the same directory and the same listen address. The
// load goes on across the restart; requests sent while it is down are
// refused by the kernel (transport errors, counted apart). After the
// restart every request answered 2xx before the kill is sent again, as it
// was (each must be 401 nonce_replayed), and every operation answered
// before the kill is retried, signed anew (each must get its stored
// response back byte for byte, Idempotent-Replayed: true, without the
// upstream running it again).
//
// Operations left unanswered by the kill are counted apart: one that
// reached the upstream may have run while its record stayed in progress.
// Retried at once after the restart such an operation is refused with 409
// while the lease taken before the kill lasts (or replayed, when its
// record was completed and only the answer was lost); retried after the
// lease it runs again, once. diskHeld operations are held at the upstream
// across the kill so that there always are some.
func TestDiskKillUnderLoad(t *testing.T) {
	skipShort(t)
	p := current(t)
	up := newUpstream(t)
	cfg := gatewayConfig{upstream: up.URL, listen: freeAddr(t), admin: freeAddr(t), nonceStore: "disk", idemStore: "disk",
		diskPath: filepath.Join(t.TempDir(), "state"), lease: p.diskLease.String()}
	g, err := startGateway(t, "gw1", cfg)
	require.NoError(t, err)
	require.Contains(t, g.logs.String(), `"nonce":"disk (exact)","idempotency":"disk"`, "the stores in effect")
	before := idleGoroutines(t, []*gateway{g})
	// Both processes have the same addresses: the monitor and the driver
	// reach the restarted one through g.
	mon := startMonitor([]*gateway{g}, time.Second)
	d := newDriver([]*gateway{g}, p.inFlight)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		d.run(ctx, p.rate, time.Hour)
	}()
	time.Sleep(p.diskKillBefore)

	var held sync.WaitGroup
	heldKeys := make([]string, p.diskHeld)
	for i := range heldKeys {
		s, err := sign(http.MethodPost, "/v1/charges?hold=1", uuid.NewString(), fmt.Appendf(nil, `{"held":%d}`, i))
		require.NoError(t, err)
		heldKeys[i] = s.key
		held.Add(1)
		go func() {
			defer held.Done()
			d.send(opHeld, s, 0)
		}()
	}
	require.Eventually(t, func() bool {
		for _, k := range heldKeys {
			if up.runs(k) != 1 {
				return false
			}
		}
		return true
	}, 30*time.Second, 10*time.Millisecond, "the held operations reach the upstream")

	killAt := time.Now()
	g.kill(t)
	killed := time.Now()
	up.release()
	held.Wait()
	g2, err := g.restart(t, "gw1 restarted")
	require.NoError(t, err)
	restarted := time.Now()
	require.Equal(t, g.addr, g2.addr)

	// Operations left unanswered by the kill: a request sent before it
	// ended in a transport error, and none was answered 2xx.
	unanswered := func() map[string]*result {
		out, acked := map[string]*result{}, map[string]bool{}
		for _, r := range d.snapshot() {
			if r.req == nil || r.req.key == "" || !r.start.Before(killed) {
				continue
			}
			switch {
			case r.err == "" && r.status/100 == 2:
				acked[r.req.key] = true
			case r.err != "":
				if f, ok := out[r.req.key]; !ok || r.start.Before(f.start) {
					out[r.req.key] = r
				}
			}
		}
		for k := range acked {
			delete(out, k)
		}
		return out
	}
	// retry re-signs each operation and sends it, all at once; ran holds
	// how many times each had reached the upstream before.
	retry := func(op string, ops map[string]*result) (out []*result, ran map[string]int) {
		ran = map[string]int{}
		for k := range ops {
			ran[k] = up.runs(k)
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, prev := range ops {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := sign(prev.req.method, prev.req.target, prev.req.key, prev.req.body)
				if err != nil {
					d.record(&result{op: op, req: prev.req, err: err.Error()})
					return
				}
				r := d.send(op, s, 0)
				mu.Lock()
				out = append(out, r)
				mu.Unlock()
			}()
		}
		wg.Wait()
		return out, ran
	}
	soonOps := unanswered()
	soon, ranSoon := retry(opUnackedSoon, soonOps)
	time.Sleep(time.Until(killAt.Add(p.diskLease + 500*time.Millisecond)))
	lastOps := unanswered()
	late, ranLate := retry(opUnackedLate, lastOps)

	time.Sleep(time.Until(restarted.Add(p.diskKillAfter)))
	cancel()
	<-done
	d.wait()
	load := d.snapshot()

	replays, checked, lost := d.verifyAfter(killAt)
	// verifyAfter re-sends the live answers; the idempotent replays
	// answered before the kill are acknowledged requests too.
	var replayedBefore []*result
	for _, r := range load {
		if r.err == "" && r.replayed && r.end.Before(killAt) {
			replayedBefore = append(replayedBefore, r)
		}
	}
	for _, prev := range replayedBefore {
		if d.send(opVerifyNonce, prev.req, 0).live() {
			replays++
		}
	}
	samples := mon.finish()
	d.client.CloseIdleConnections()
	up.CloseClientConnections()
	after := settleGoroutines(t, []*gateway{g2}, before, p.goroutineSlack, p.settleGoroutinesFor)

	all := d.snapshot()
	c := count(all)
	extraNonces, extraKeys, _, _ := up.seen()
	down := only(load, func(r *result) bool { return r.err != "" && !r.end.Before(killAt) && r.start.Before(restarted) })
	otherErrors := only(all, func(r *result) bool { return r.err != "" && (r.end.Before(killAt) || !r.start.Before(restarted)) })
	var firstLive time.Time
	for _, r := range load {
		if r.live() && !r.start.Before(restarted) && (firstLive.IsZero() || r.end.Before(firstLive)) {
			firstLive = r.end
		}
	}
	require.False(t, firstLive.IsZero(), "the restarted gateway served nothing")

	// The unanswered operations: those that had reached the upstream, those
	// retried at once while their lease could still hold, and how the
	// retries after the lease ended.
	ranBeforeKill, heldSoon, withinLease := 0, 0, 0
	soonWrong, lateWrong := 0, 0
	for k, n := range ranLate {
		if m, ok := ranSoon[k]; ok {
			n = m // before the first retry
		}
		if n > 0 {
			ranBeforeKill++
		}
	}
	ranAgain, replayedLate := 0, 0
	for _, r := range soon {
		if ranSoon[r.req.key] == 0 {
			continue // never reached the upstream: it may run now
		}
		if r.label() == "201" {
			ranAgain++ // its lease had ended already
		}
		// The lease was taken after the first attempt started.
		if r.end.Before(soonOps[r.req.key].start.Add(p.diskLease)) {
			withinLease++
			if r.label() == "409 idempotency_in_progress" {
				heldSoon++
			} else if r.label() != "201 replayed" {
				soonWrong++
			}
		}
	}
	for _, r := range late {
		switch r.label() {
		case "201":
			if ranLate[r.req.key] > 0 {
				ranAgain++
			}
		case "201 replayed":
			replayedLate++
		default:
			lateWrong++
		}
	}
	runsOver := 0
	for k := range lastOps {
		if up.runs(k) > 2 {
			runsOver++
		}
	}

	report(t, p, row{
		scenario: "disk store: gateway killed under load, restarted", gateways: 1,
		requests: c.requests, accepted: c.accepted, replayed: c.replayedResponses, rejected: c.rejected,
		faults: fmt.Sprintf("SIGKILL after %s, restart took %s, %d requests failed at the kill or while down; %d operations unanswered at the kill "+
			"(%d had run upstream, %d of them held there)",
			seconds(killAt.Sub(start)), seconds(restarted.Sub(killed)), len(down),
			len(lastOps), ranBeforeKill, len(heldKeys)),
		recovery: fmt.Sprintf("first live answer %s after the kill; unanswered operations: %d of %d retried within the lease "+
			"got 409, %d ran again after it, %d replayed", seconds(firstLive.Sub(killAt)), heldSoon, withinLease, ranAgain, replayedLate),
		replaysAccepted: max(extraNonces, c.replaysAccepted, replays),
		recordsLost:     fmt.Sprintf("%d of %d", lost, checked),
		peakHeap:        peak(samples, time.Time{}, time.Now(), func(s sample) float64 { return s.heap }),
		goroutines:      goroutineCells(before, after),
	})
	t.Logf("outcomes: %s; failed at the kill or while down: %s; acknowledged requests re-sent: %d (%d of them idempotent replays); records retried: %d",
		codes(c.byLabel), codes(count(down).byLabel), len(only(all, func(r *result) bool { return r.op == opVerifyNonce })),
		len(replayedBefore), checked)
	for _, gw := range []*gateway{g, g2} {
		if n := gw.countLog(`"level":"ERROR"`); n > 0 {
			t.Logf("%s: %d errors logged, the last: %s", gw.name, n, lastLine(gw.logs.String(), `"level":"ERROR"`))
		}
	}

	assert.Zero(t, len(otherErrors), "transport errors other than at the kill and while the gateway was down: %v", firstErrors(otherErrors))
	assert.Zero(t, replays, "requests acknowledged before the kill, accepted again after it")
	verified := only(all, func(r *result) bool { return r.op == opVerifyNonce })
	assert.Equal(t, map[string]int{"401 nonce_replayed": len(verified)}, count(verified).byLabel, "acknowledged requests sent again")
	assert.Positive(t, checked, "operations completed before the kill")
	assert.Zero(t, lost, "operations completed before the kill that did not replay byte for byte")
	assert.Zero(t, extraNonces, "nonces the upstream saw more than once")
	assert.Zero(t, c.replaysAccepted, "nonces answered live more than once")
	assert.Equal(t, ranAgain, extraKeys, "keys the upstream ran more than once: only operations unanswered at the kill, after their lease")
	assert.Zero(t, runsOver, "operations unanswered at the kill that ran more than twice")
	assert.Zero(t, c.extraExecutions, "keys answered live more than once")
	assert.Zero(t, c.mismatched, "answers to a key that differ from its first")
	assert.Zero(t, soonWrong, "operations that had run, retried within their lease: neither 409 nor a replay")
	assert.Zero(t, lateWrong, "operations unanswered at the kill, retried after their lease: neither run nor replayed")
	for _, k := range heldKeys {
		assert.Equal(t, 2, up.runs(k), "an operation held at the upstream across the kill runs again after its lease, once")
	}
	assert.Equal(t, map[string]int{"201": len(heldKeys)},
		count(only(late, func(r *result) bool { return strings.Contains(r.req.target, "hold") })).byLabel, "held operations retried after the lease")
	for label := range c.byLabel {
		assert.Contains(t, []string{"200", "201", "201 replayed", "401 nonce_replayed", "409 idempotency_in_progress", "error"}, label)
	}
	assert.LessOrEqual(t, after[0], before[0]+p.goroutineSlack, "goroutines of the restarted gateway once the load stopped")
	assert.Zero(t, g2.countLog(`"level":"ERROR"`), "errors logged by the restarted gateway")
}

// firstErrors returns up to three transport errors, for a failure message.
func firstErrors(rs []*result) []string {
	var out []string
	for _, r := range rs {
		if len(out) == 3 {
			break
		}
		out = append(out, r.op+": "+r.err)
	}
	return out
}

// Sustained signed load on one gateway on the disk store (fsync on), with
// a short idempotency TTL and freshness window so that nonces and records
// expire and are reclaimed all along, for diskSoakTTLs TTLs. The store's
// file (replayguard_disk_file_bytes, sampled each second) grows to what
// the live entries need and stays there: after diskSoakTTLs TTLs it is
// within diskSoakGrowth of its size after half of them, while
// replayguard_disk_reclaimed_total keeps growing. The upstream never sees a
// nonce twice nor runs a key twice, and no request is refused for want of
// room.
func TestDiskSoak(t *testing.T) {
	skipShort(t)
	p := current(t)
	up := newUpstream(t)
	ttl := p.diskSoakTTL
	g, err := startGateway(t, "gw1", gatewayConfig{upstream: up.URL, nonceStore: "disk", idemStore: "disk",
		diskPath: filepath.Join(t.TempDir(), "state"), tolerance: p.diskSoakWindow.String(), idemTTL: ttl.String()})
	require.NoError(t, err)
	gws := []*gateway{g}
	before := idleGoroutines(t, gws)
	mon := startMonitor(gws, time.Second)
	d := newDriver(gws, p.inFlight)
	d.retryWithin = ttl / 2

	start := time.Now()
	d.run(context.Background(), p.diskSoakRate, ttl*time.Duration(p.diskSoakTTLs))
	d.wait()
	end := time.Now()
	final, err := g.metrics()
	require.NoError(t, err)
	samples := mon.finish()
	d.client.CloseIdleConnections()
	up.CloseClientConnections()
	after := settleGoroutines(t, gws, before, p.goroutineSlack, p.settleGoroutinesFor)

	// The file never shrinks: its largest sample up to an instant is its
	// size then.
	file := func(s sample) float64 { return s.diskFile }
	live := func(s sample) float64 { return s.diskLive }
	half := start.Add(ttl * time.Duration(p.diskSoakTTLs/2))
	fileHalf, fileEnd := peak(samples, start, half, file), final["replayguard_disk_file_bytes"]
	liveHalf, liveEnd := peak(samples, half.Add(-ttl), half, live), peak(samples, end.Add(-ttl), end, live)
	reclaimedHalf := peak(samples, start, half, func(s sample) float64 { return s.reclaimed })
	reclaimedEnd := final["replayguard_disk_reclaimed_total"]
	var series []string
	for i := 1; i <= p.diskSoakTTLs; i++ {
		series = append(series, fmt.Sprintf("%.0f", peak(samples, start, start.Add(ttl*time.Duration(i)), file)/1024))
	}

	results := d.snapshot()
	c := count(results)
	extraNonces, extraKeys, _, _ := up.seen()
	// Entries written: a nonce for every request past the signature and
	// window checks, a record for every operation run. Those not yet
	// reclaimed are live at the end.
	written := 0
	for _, r := range results {
		if r.err == "" && (r.status/100 == 2 || r.code == "idempotency_in_progress") {
			written++
			if r.live() && r.req.key != "" {
				written++
			}
		}
	}
	liveEntries := float64(written) - reclaimedEnd
	fresh := only(results, func(r *result) bool { return r.op == opGet || r.op == opPost })
	expired := len(only(fresh, func(r *result) bool { return r.code == "timestamp_expired" }))

	report(t, p, row{
		scenario: "soak, disk store", gateways: 1,
		requests: c.requests, accepted: c.accepted, replayed: c.replayedResponses, rejected: c.rejected,
		faults: fmt.Sprintf("%s at %.0f req/s, TTL %s, window %s; file %.0f KiB after %d TTLs, %.0f KiB after %d (live %.0f → %.0f KiB); "+
			"%.0f entries reclaimed (%.0f by half-time); about %.0f file bytes per live entry (%.0f live)",
			seconds(end.Sub(start)), p.diskSoakRate, ttl, p.diskSoakWindow, fileHalf/1024, p.diskSoakTTLs/2, fileEnd/1024, p.diskSoakTTLs,
			liveHalf/1024, liveEnd/1024, reclaimedEnd, reclaimedHalf, fileEnd/max(liveEntries, 1), liveEntries),
		recovery:        "—",
		replaysAccepted: max(extraNonces, c.replaysAccepted),
		recordsLost:     fmt.Sprintf("%d mismatched", c.mismatched),
		peakHeap:        peak(samples, start, end, func(s sample) float64 { return s.heap }),
		goroutines:      goroutineCells(before, after),
	})
	t.Logf("outcomes: %s; fresh requests signed past the window on arrival: %d of %d; file KiB at each TTL: %s",
		codes(c.byLabel), expired, len(fresh), strings.Join(series, " "))

	require.Positive(t, fileHalf, "file size samples by half-time")
	assert.LessOrEqual(t, fileEnd, (1+p.diskSoakGrowth)*fileHalf, "file size after %d TTLs against its size after %d", p.diskSoakTTLs, p.diskSoakTTLs/2)
	assert.Positive(t, reclaimedHalf, "entries reclaimed by half-time")
	assert.Greater(t, reclaimedEnd, reclaimedHalf, "entries reclaimed in the second half")
	assert.Zero(t, final["replayguard_disk_write_errors_total"], "failed commits")
	assert.Zero(t, c.errors, "transport errors")
	assert.Zero(t, c.rejected["store_unavailable"], "requests refused by the store")
	assert.Zero(t, extraNonces, "nonces the upstream saw more than once")
	assert.Zero(t, c.replaysAccepted, "nonces answered live more than once")
	assert.Zero(t, extraKeys, "keys the upstream ran more than once")
	assert.Zero(t, c.mismatched, "answers to a key that differ from its first")
	for label := range c.byLabel {
		assert.Contains(t, []string{"200", "201", "201 replayed", "401 nonce_replayed", "401 timestamp_expired", "409 idempotency_in_progress"}, label)
	}
	assert.LessOrEqual(t, after[0], before[0]+p.goroutineSlack, "goroutines once the load stopped")
	assert.Zero(t, g.countLog(`"level":"ERROR"`), "gateway errors logged")
}
