package reliability

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Operation kinds of the load mix.
const (
	opGet             = "get"              // fresh signed GET
	opPost            = "post"             // fresh signed POST with a new Idempotency-Key
	opDupConcurrent   = "dup-concurrent"   // one signed request sent to two gateways at once
	opDupLater        = "dup-later"        // a signed request accepted earlier, sent again to another gateway
	opRetryConcurrent = "retry-concurrent" // a new key sent twice, signed apart, to two gateways at once
	opRetryLater      = "retry-later"      // a completed key re-signed and sent to another gateway
	opVerifyNonce     = "verify-nonce"     // after a fault: a request accepted before it, sent again
	opVerifyRecord    = "verify-record"    // after a fault: a key completed before it, retried
)

// result is what one request ended with.
type result struct {
	op         string
	req        *signedReq
	gw         int
	start, end time.Time
	status     int
	code       string // problem code of a problem+json answer
	replayed   bool   // Idempotent-Replayed: true
	body       string // kept for POSTs (compared byte for byte)
	header     string // X-Execution, kept for POSTs
	retryAfter string // Retry-After of a 503
	err        string // transport error
}

// live reports a 2xx that ran the upstream (not an idempotent replay).
func (r *result) live() bool { return r.err == "" && r.status/100 == 2 && !r.replayed }

// label names the outcome: "201", "201 replayed", "401 nonce_replayed",
// "error".
func (r *result) label() string {
	switch {
	case r.err != "":
		return "error"
	case r.replayed:
		return strconv.Itoa(r.status) + " replayed"
	case r.code != "":
		return strconv.Itoa(r.status) + " " + r.code
	}
	return strconv.Itoa(r.status)
}

// driver sends signed load at a steady rate, spread over the gateways, with
// duplicates and retries injected, and keeps every result.
type driver struct {
	gws    []*gateway
	client *http.Client
	sem    chan struct{}
	wg     sync.WaitGroup
	seq    atomic.Int64
	// retryWithin bounds the age of a completed key that a later retry
	// picks (0: any age), so that retries stay within the record's TTL.
	retryWithin time.Duration
	// keepBodies keeps the bodies of POST answers (byte-for-byte checks).
	keepBodies bool

	mu        sync.Mutex
	results   []*result
	accepted  []*result // live 2xx, any method
	completed []*result // live 2xx POSTs
}

func newDriver(gws []*gateway, inFlight int) *driver {
	return &driver{gws: gws, client: newClient(inFlight), sem: make(chan struct{}, inFlight), keepBodies: true}
}

// run sends ops at rate per second for d (or until ctx ends) and returns
// without waiting for the requests still in flight (see wait).
func (d *driver) run(ctx context.Context, rate float64, dur time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case d.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		n := d.seq.Add(1)
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			defer func() { <-d.sem }()
			d.op(n)
		}()
	}
}

// wait waits for every request in flight.
func (d *driver) wait() { d.wg.Wait() }

// op runs operation n of the mix (per 20: 7 GETs, 6 POSTs, 2 concurrent
// duplicates, 2 later duplicates, 1 concurrent retry, 2 later retries).
func (d *driver) op(n int64) {
	gw := int(n) % len(d.gws)
	switch k := n % 20; {
	case k < 7:
		d.fresh(opGet, gw)
	case k < 13:
		d.fresh(opPost, gw)
	case k < 15:
		d.dupConcurrent(n, gw)
	case k < 17:
		if !d.dupLater() {
			d.fresh(opGet, gw)
		}
	case k < 18:
		d.retryConcurrent(n, gw)
	default:
		if !d.retryLater() {
			d.fresh(opPost, gw)
		}
	}
}

func newPost(n int64) (*signedReq, error) {
	return sign(http.MethodPost, "/v1/charges", uuid.NewString(), fmt.Appendf(nil, `{"amount":%d}`, n))
}

func (d *driver) fresh(op string, gw int) {
	n := d.seq.Load()
	var s *signedReq
	var err error
	if op == opGet {
		s, err = sign(http.MethodGet, "/v1/things?n="+strconv.FormatInt(n, 10), "", nil)
	} else {
		s, err = newPost(n)
	}
	if err != nil {
		d.record(&result{op: op, gw: gw, err: err.Error()})
		return
	}
	d.send(op, s, gw)
}

// other returns a gateway other than gw (gw itself when there is one).
func (d *driver) other(gw int) int {
	if len(d.gws) == 1 {
		return gw
	}
	return (gw + 1 + rand.IntN(len(d.gws)-1)) % len(d.gws)
}

func (d *driver) dupConcurrent(n int64, gw int) {
	var s *signedReq
	var err error
	if n%2 == 0 {
		s, err = newPost(n)
	} else {
		s, err = sign(http.MethodGet, "/v1/things?n="+strconv.FormatInt(n, 10), "", nil)
	}
	if err != nil {
		d.record(&result{op: opDupConcurrent, gw: gw, err: err.Error()})
		return
	}
	d.together(opDupConcurrent, [2]*signedReq{s, s}, [2]int{gw, d.other(gw)})
}

func (d *driver) retryConcurrent(n int64, gw int) {
	a, err := newPost(n)
	if err != nil {
		d.record(&result{op: opRetryConcurrent, gw: gw, err: err.Error()})
		return
	}
	b, err := sign(a.method, a.target, a.key, a.body)
	if err != nil {
		d.record(&result{op: opRetryConcurrent, gw: gw, err: err.Error()})
		return
	}
	d.together(opRetryConcurrent, [2]*signedReq{a, b}, [2]int{gw, d.other(gw)})
}

// together sends two requests at the same instant.
func (d *driver) together(op string, reqs [2]*signedReq, gws [2]int) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			d.send(op, reqs[i], gws[i])
		}()
	}
	close(start)
	wg.Wait()
}

// dupLater re-sends a request accepted earlier to another gateway.
func (d *driver) dupLater() bool {
	d.mu.Lock()
	if len(d.accepted) == 0 {
		d.mu.Unlock()
		return false
	}
	prev := d.accepted[rand.IntN(len(d.accepted))]
	d.mu.Unlock()
	d.send(opDupLater, prev.req, d.other(prev.gw))
	return true
}

// retryLater re-signs a recently completed operation (same key, target and
// body) and sends it to another gateway.
func (d *driver) retryLater() bool {
	d.mu.Lock()
	var prev *result
	lo := max(0, len(d.completed)-256) // among the recent ones
	for tries := 0; tries < 4 && len(d.completed) > lo; tries++ {
		c := d.completed[lo+rand.IntN(len(d.completed)-lo)]
		if d.retryWithin == 0 || time.Since(c.end) < d.retryWithin {
			prev = c
			break
		}
	}
	d.mu.Unlock()
	if prev == nil {
		return false
	}
	s, err := sign(prev.req.method, prev.req.target, prev.req.key, prev.req.body)
	if err != nil {
		d.record(&result{op: opRetryLater, gw: prev.gw, err: err.Error()})
		return true
	}
	d.send(opRetryLater, s, d.other(prev.gw))
	return true
}

// send sends s to gateway gw and records the result.
func (d *driver) send(op string, s *signedReq, gw int) *result {
	r := &result{op: op, req: s, gw: gw, start: time.Now()}
	resp, err := d.client.Do(s.to(context.Background(), d.gws[gw].addr))
	if err != nil {
		r.end = time.Now()
		r.err = err.Error()
		d.record(r)
		return r
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	r.end = time.Now()
	if err != nil {
		r.err = err.Error()
		d.record(r)
		return r
	}
	r.status = resp.StatusCode
	r.replayed = resp.Header.Get("Idempotent-Replayed") == "true"
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		r.code = problemCode(b)
	}
	if r.status == http.StatusServiceUnavailable {
		r.retryAfter = resp.Header.Get("Retry-After")
	}
	if s.method == http.MethodPost && d.keepBodies {
		r.body, r.header = string(b), resp.Header.Get("X-Execution")
	}
	d.record(r)
	return r
}

func (d *driver) record(r *result) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.results = append(d.results, r)
	if r.live() && r.op != opVerifyNonce && r.op != opVerifyRecord {
		d.accepted = append(d.accepted, r)
		if r.req.method == http.MethodPost {
			d.completed = append(d.completed, r)
		}
	}
}

// snapshot returns the results so far.
func (d *driver) snapshot() []*result {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*result(nil), d.results...)
}

// verifyAfter re-sends, once the load has stopped, every request accepted
// before cutoff (each must be a replay now) and retries every operation
// completed before cutoff with a freshly signed request (each must get the
// stored response back, byte for byte). It returns the replays accepted and
// the records checked and lost.
func (d *driver) verifyAfter(cutoff time.Time) (replaysAccepted, recordsChecked, recordsLost int) {
	d.mu.Lock()
	var accepted, completed []*result
	for _, r := range d.accepted {
		if r.end.Before(cutoff) {
			accepted = append(accepted, r)
		}
	}
	for _, r := range d.completed {
		if r.end.Before(cutoff) {
			completed = append(completed, r)
		}
	}
	d.mu.Unlock()
	var replays, lost atomic.Int64
	var wg sync.WaitGroup
	for _, prev := range accepted {
		d.sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-d.sem }()
			if d.send(opVerifyNonce, prev.req, d.other(prev.gw)).live() {
				replays.Add(1)
			}
		}()
	}
	for _, prev := range completed {
		d.sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-d.sem }()
			s, err := sign(prev.req.method, prev.req.target, prev.req.key, prev.req.body)
			if err != nil {
				lost.Add(1)
				return
			}
			r := d.send(opVerifyRecord, s, d.other(prev.gw))
			if !r.replayed || r.status != prev.status || r.body != prev.body || r.header != prev.header {
				lost.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(replays.Load()), len(completed), int(lost.Load())
}

// tally is the count of a set of results.
type tally struct {
	requests, accepted, replayedResponses, errors int
	byLabel                                       map[string]int
	rejected                                      map[string]int // by problem code
	// replaysAccepted counts nonces answered live more than once (each
	// extra live answer), as the clients saw it.
	replaysAccepted int
	// extraExecutions counts keys answered live more than once.
	extraExecutions int
	// mismatched counts answers to a key whose status or body differs from
	// the key's first live answer.
	mismatched int
}

func count(results []*result) tally {
	t := tally{byLabel: map[string]int{}, rejected: map[string]int{}}
	liveByNonce := map[string]int{}
	liveByKey := map[string]int{}
	firstByKey := map[string]*result{}
	for _, r := range results {
		t.requests++
		t.byLabel[r.label()]++
		switch {
		case r.err != "":
			t.errors++
		case r.live():
			t.accepted++
			liveByNonce[r.req.nonce]++
			if r.req.key != "" {
				liveByKey[r.req.key]++
				if f, ok := firstByKey[r.req.key]; !ok || r.end.Before(f.end) {
					firstByKey[r.req.key] = r
				}
			}
		case r.replayed:
			t.replayedResponses++
		case r.code != "":
			t.rejected[r.code]++
		default:
			t.rejected["status "+strconv.Itoa(r.status)]++
		}
	}
	for _, n := range liveByNonce {
		t.replaysAccepted += n - 1
	}
	for _, n := range liveByKey {
		t.extraExecutions += n - 1
	}
	for _, r := range results {
		if r.err != "" || r.req == nil || r.req.key == "" || r.status/100 != 2 {
			continue
		}
		if f := firstByKey[r.req.key]; f != nil && (f.status != r.status || f.body != r.body || f.header != r.header) {
			t.mismatched++
		}
	}
	return t
}

// only returns the results for which keep is true.
func only(results []*result, keep func(*result) bool) []*result {
	var out []*result
	for _, r := range results {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// codes formats counts by name, largest first.
func codes(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		if m[names[i]] != m[names[j]] {
			return m[names[i]] > m[names[j]]
		}
		return names[i] < names[j]
	})
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
