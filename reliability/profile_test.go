package reliability

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// profile sizes the scenarios: short (the default, for CI on two cores) or
// full (RELIABILITY=full).
type profile struct {
	name     string
	gateways int
	rate     float64 // signed requests per second, over all gateways
	inFlight int     // requests in flight at most

	sharedFor time.Duration // load per nonce mode with gateways sharing one Redis

	restartModes                        []string      // nonce modes of the Redis restart
	restartBefore, outage, restartAfter time.Duration // load before the kill, down time, load after the restart
	failoverBefore, failoverAfter       time.Duration // load before and after a Cluster master is killed

	slowHeaderConns, slowBodyConns int
	slowRate                       float64       // signed requests per second next to the slow connections
	cutSlack                       time.Duration // past the server's timeout, a slow connection must be cut

	oversizedEach int // requests of each oversized kind

	soakRate               float64
	soakWarmup, soakFor    time.Duration
	soakTolerance, soakTTL string // freshness window and idempotency TTL, short so that records turn over
	soakMaxEntries         int
	soakHeapFactor         float64 // heap at the end ≤ factor × heap after warm-up + slack
	soakHeapSlack          float64 // bytes

	diskKillBefore, diskKillAfter time.Duration // load before the disk store's gateway is killed, and after its restart
	diskLease                     time.Duration // idempotency lease of that gateway: operations running at the kill are held this long
	diskHeld                      int           // operations held at the upstream when it is killed

	diskSoakRate   float64
	diskSoakTTL    time.Duration // idempotency TTL of the disk soak; it runs diskSoakTTLs of them
	diskSoakWindow time.Duration // timestamp tolerance and future skew of the disk soak
	diskSoakTTLs   int
	diskSoakGrowth float64 // file size after diskSoakTTLs TTLs ≤ (1 + growth) × after half of them

	goroutineSlack       int // goroutines above the idle count still taken as settled
	settleGoroutinesFor  time.Duration
	restartRecoveryBound time.Duration // generous bounds, not latency goals
	failoverBound        time.Duration
	replicationSlack     time.Duration // time for replicas to catch up before the kill
}

var shortProfile = profile{
	name: "short", gateways: 3, rate: 120, inFlight: 128,
	sharedFor:    6 * time.Second,
	restartModes: []string{"exact"}, restartBefore: 3 * time.Second, outage: 2 * time.Second, restartAfter: 4 * time.Second,
	failoverBefore: 3 * time.Second, failoverAfter: 12 * time.Second,
	slowHeaderConns: 50, slowBodyConns: 50, slowRate: 20,
	oversizedEach: 5,
	soakRate:      150, soakWarmup: 12 * time.Second, soakFor: 20 * time.Second,
	soakTolerance: "5s", soakTTL: "10s", soakMaxEntries: 100_000,
	soakHeapFactor: 1.5, soakHeapSlack: 4 << 20, goroutineSlack: 2,
	diskKillBefore: 3 * time.Second, diskKillAfter: 5 * time.Second, diskLease: 2 * time.Second, diskHeld: 4,
	diskSoakRate: 100, diskSoakTTL: 2 * time.Second, diskSoakWindow: time.Second, diskSoakTTLs: 20, diskSoakGrowth: 0.10,
	restartRecoveryBound: 15 * time.Second, failoverBound: 30 * time.Second,
	cutSlack:            20 * time.Second,
	settleGoroutinesFor: 15 * time.Second, replicationSlack: 10 * time.Second,
}

var fullProfile = profile{
	name: "full", gateways: 5, rate: 400, inFlight: 256,
	sharedFor:    30 * time.Second,
	restartModes: []string{"exact", "bloom"}, restartBefore: 10 * time.Second, outage: 5 * time.Second, restartAfter: 15 * time.Second,
	failoverBefore: 10 * time.Second, failoverAfter: 20 * time.Second,
	slowHeaderConns: 300, slowBodyConns: 300, slowRate: 50,
	oversizedEach: 20,
	soakRate:      400, soakWarmup: 60 * time.Second, soakFor: 5 * time.Minute,
	soakTolerance: "20s", soakTTL: "40s", soakMaxEntries: 1_000_000,
	soakHeapFactor: 1.5, soakHeapSlack: 4 << 20, goroutineSlack: 2,
	diskKillBefore: 10 * time.Second, diskKillAfter: 15 * time.Second, diskLease: 2 * time.Second, diskHeld: 16,
	diskSoakRate: 400, diskSoakTTL: 10 * time.Second, diskSoakWindow: 5 * time.Second, diskSoakTTLs: 20, diskSoakGrowth: 0.10,
	restartRecoveryBound: 15 * time.Second, failoverBound: 30 * time.Second,
	cutSlack:            20 * time.Second,
	settleGoroutinesFor: 15 * time.Second, replicationSlack: 10 * time.Second,
}

// current returns the profile RELIABILITY selects.
func current(t *testing.T) profile {
	t.Helper()
	switch v := os.Getenv("RELIABILITY"); v {
	case "", "short":
		return shortProfile
	case "full":
		return fullProfile
	default:
		t.Fatalf("RELIABILITY=%q: want short or full", v)
		return profile{}
	}
}

// row is one scenario's figures, logged as one line and, with
// RELIABILITY_REPORT set, appended to that file as a Markdown table row.
type row struct {
	scenario        string
	gateways        int
	requests        int
	accepted        int
	replayed        int // idempotent replays answered
	rejected        map[string]int
	faults          string
	recovery        string
	replaysAccepted int
	recordsLost     string
	peakHeap        float64 // bytes, largest of any gateway
	goroutines      string  // "before → after", per gateway
}

const reportHeader = "| scenario | profile | gateways | requests | accepted (+ idempotent replays) | rejected by code | faults injected | recovery | replays accepted | records lost | peak heap | goroutines before → after |\n" +
	"|---|---|---|---|---|---|---|---|---|---|---|---|\n"

var reportMu sync.Mutex

func report(t *testing.T, p profile, r row) {
	t.Helper()
	rec := r.recovery
	if rec == "" {
		rec = "—"
	}
	lost := r.recordsLost
	if lost == "" {
		lost = "—"
	}
	heap := "—"
	if r.peakHeap > 0 {
		heap = fmt.Sprintf("%.1f MiB", mib(r.peakHeap))
	}
	cells := []string{r.scenario, p.name, fmt.Sprint(r.gateways), fmt.Sprint(r.requests),
		fmt.Sprintf("%d (+%d)", r.accepted, r.replayed), codes(r.rejected), r.faults, rec,
		fmt.Sprint(r.replaysAccepted), lost, heap, r.goroutines}
	t.Logf("summary: %s", strings.Join(cells, " | "))
	path := os.Getenv("RELIABILITY_REPORT")
	if path == "" {
		return
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	require.NoError(t, err)
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() == 0 {
		_, err = f.WriteString(reportHeader)
		require.NoError(t, err)
	}
	for i, c := range cells {
		cells[i] = strings.ReplaceAll(c, "|", `\|`)
	}
	_, err = fmt.Fprintf(f, "| %s |\n", strings.Join(cells, " | "))
	require.NoError(t, err)
}

// goroutineCells formats per-gateway goroutine counts before and after,
// as a range over the gateways when they differ.
func goroutineCells(before, after []int) string {
	span := func(v []int) string {
		if len(v) == 0 {
			return "—"
		}
		lo, hi := v[0], v[0]
		for _, x := range v {
			lo, hi = min(lo, x), max(hi, x)
		}
		if lo == hi {
			return fmt.Sprint(lo)
		}
		return fmt.Sprintf("%d–%d", lo, hi)
	}
	return span(before) + " → " + span(after)
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
