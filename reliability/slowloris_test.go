package reliability

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The server's read limits, fixed in cmd/replayguard/serve.go.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	// trickleEvery is how often a slow client sends its next byte.
	trickleEvery = 500 * time.Millisecond
)

// slowConn is one connection that sends a byte at a time.
type slowConn struct {
	kind   string // "header" or "body"
	opened time.Time
	closed time.Time // zero: not cut within the bound
	answer string    // first line the server sent, if any
}

// Many connections send their headers, or their body, one byte at a time.
// The server cuts the header tricklers at its header read timeout and the
// body tricklers at its read timeout, while signed traffic on other
// connections keeps being answered. Counts are asserted; the only times
// checked are generous bounds on when a slow connection is cut.
func TestSlowClients(t *testing.T) {
	skipShort(t)
	t.Parallel()
	p := current(t)
	up := newUpstream(t)
	gws := startGateways(t, 1, gatewayConfig{upstream: up.URL})
	g := gws[0]
	before := idleGoroutines(t, gws)
	mon := startMonitor(gws, time.Second)

	// Signed traffic for as long as the slow connections live.
	d := newDriver(gws, p.inFlight)
	ctx, cancel := context.WithCancel(context.Background())
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		d.run(ctx, p.slowRate, time.Hour)
	}()

	// Requests signed but never finished: the headers of one, and the body
	// of a POST declaring max_body_bytes (the default, 1 MiB).
	s, err := sign("POST", "/v1/upload", "slow-upload", nil)
	require.NoError(t, err)
	var head strings.Builder
	fmt.Fprintf(&head, "POST /v1/upload HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n", signedHost, 1<<20)
	for k, vs := range s.header {
		for _, v := range vs {
			fmt.Fprintf(&head, "%s: %s\r\n", k, v)
		}
	}
	head.WriteString("\r\n")

	var conns []*slowConn
	var wg sync.WaitGroup
	open := func(kind string, prefix []byte, trickle []byte, bound time.Duration) {
		c, err := net.DialTimeout("tcp", g.addr, 5*time.Second)
		require.NoError(t, err)
		sc := &slowConn{kind: kind, opened: time.Now()}
		conns = append(conns, sc)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc.run(c, prefix, trickle, bound)
		}()
	}
	headerLine := []byte("GET /v1/things HTTP/1.1\r\nHost: " + signedHost + "\r\nX-Slow: " + strings.Repeat("a", 4096))
	for i := 0; i < max(p.slowHeaderConns, p.slowBodyConns); i++ {
		if i < p.slowHeaderConns {
			open("header", nil, headerLine, readHeaderTimeout+p.cutSlack)
		}
		if i < p.slowBodyConns {
			open("body", []byte(head.String()), []byte(strings.Repeat("b", 4096)), readTimeout+p.cutSlack)
		}
	}
	opened := time.Now()
	time.Sleep(3 * time.Second)
	during := goroutinesByGateway(t, gws)
	wg.Wait()
	cancel()
	<-loadDone
	d.wait()
	samples := mon.finish()
	d.client.CloseIdleConnections()
	up.CloseClientConnections()
	after := settleGoroutines(t, gws, before, p.goroutineSlack, p.settleGoroutinesFor)

	c := count(d.snapshot())
	cut := map[string][]time.Duration{}
	answers := map[string]int{}
	notCut := 0
	for _, sc := range conns {
		if sc.closed.IsZero() {
			notCut++
			continue
		}
		cut[sc.kind] = append(cut[sc.kind], sc.closed.Sub(sc.opened))
		a := sc.answer
		if a == "" {
			a = "closed without an answer"
		}
		answers[sc.kind+": "+a]++
	}
	report(t, p, row{
		scenario: "slow clients", gateways: 1,
		requests: c.requests, accepted: c.accepted, replayed: c.replayedResponses, rejected: c.rejected,
		faults: fmt.Sprintf("%d header and %d body connections at 1 byte/%s; cut after %s (headers), %s (bodies)",
			p.slowHeaderConns, p.slowBodyConns, trickleEvery, spread(cut["header"]), spread(cut["body"])),
		recovery:        "—",
		replaysAccepted: c.replaysAccepted,
		peakHeap:        peak(samples, time.Time{}, time.Now(), func(s sample) float64 { return s.heap }),
		goroutines:      goroutineCells(before, after) + fmt.Sprintf(" (%d while slow)", during[0]),
	})
	t.Logf("slow connections: %s; signed traffic: %s; all slow connections opened in %s",
		codes(answers), codes(c.byLabel), seconds(opened.Sub(conns[0].opened)))

	assert.Zero(t, notCut, "slow connections still open at the bound")
	assert.Len(t, cut["header"], p.slowHeaderConns, "header tricklers cut")
	assert.Len(t, cut["body"], p.slowBodyConns, "body tricklers cut")
	for _, sc := range conns {
		if sc.kind == "body" && sc.answer != "" {
			assert.Contains(t, sc.answer, "400", "a body that stalls is answered 400 body_unreadable, if at all")
		}
	}
	assert.Zero(t, c.errors, "signed requests that failed while slow clients held connections")
	assert.Positive(t, c.accepted)
	assert.Zero(t, c.replaysAccepted)
	for label := range c.byLabel {
		assert.Contains(t, []string{"200", "201", "201 replayed", "401 nonce_replayed", "409 idempotency_in_progress"}, label)
	}
	assert.LessOrEqual(t, after[0], before[0]+p.goroutineSlack, "goroutines once the slow connections are gone")
}

// run writes prefix, then one byte of trickle every trickleEvery (cycling),
// until the server closes the connection or bound passes.
func (sc *slowConn) run(c net.Conn, prefix, trickle []byte, bound time.Duration) {
	closed := make(chan struct{})
	defer func() {
		_ = c.Close()
		<-closed
	}()
	go func() {
		defer close(closed)
		rd := bufio.NewReader(c)
		line, err := rd.ReadString('\n')
		sc.answer = strings.TrimSpace(line)
		for err == nil {
			_, err = rd.ReadByte()
		}
	}()
	if len(prefix) > 0 {
		_, _ = c.Write(prefix)
	}
	tick := time.NewTicker(trickleEvery)
	defer tick.Stop()
	limit := time.NewTimer(bound)
	defer limit.Stop()
	for i := 0; ; i++ {
		select {
		case <-closed:
			sc.closed = time.Now()
			return
		case <-limit.C:
			return
		case <-tick.C:
			_, _ = c.Write(trickle[i%len(trickle) : i%len(trickle)+1])
		}
	}
}

// spread formats durations as "min–max".
func spread(ds []time.Duration) string {
	if len(ds) == 0 {
		return "—"
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return fmt.Sprintf("%.1f–%.1f s", s[0].Seconds(), s[len(s)-1].Seconds())
}
