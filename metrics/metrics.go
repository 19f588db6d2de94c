// Package metrics exports what replayguard does as Prometheus metrics. A
// Metrics is a replayguard.Observer; the binary serves it on admin_listen
// /metrics, and the library and the Caddy module register it on their own
// registry.
package metrics

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/bloom"
)

// Metrics implements replayguard.Observer.
type Metrics struct {
	requests      *prometheus.CounterVec
	guardDuration prometheus.Observer
	// guardDurations is guardDuration by route, when routed.
	guardDurations *prometheus.HistogramVec
	routed         bool
	storeDuration  *prometheus.HistogramVec
	storeErrors    *prometheus.CounterVec
	failOpen       *prometheus.CounterVec
	idempotency    *prometheus.CounterVec
	quota          *prometheus.CounterVec

	// The series reported on every request, looked up once (a lookup by
	// label values hashes and checks them and takes a lock): accepted
	// and replayed requests and each store call's latency on first use,
	// so that /metrics shows them only once they happened; the
	// idempotency events when precreated.
	accepted, replayed seriesRef[prometheus.Counter]
	stores             [len(storeNames)][len(storeOps)]seriesRef[prometheus.Observer]
	events             map[string]prometheus.Counter

	mu     sync.Mutex
	blooms map[string]func() []bloom.BucketStats
	funcs  []funcMetric
	hists  []histMetric
}

var (
	_ replayguard.Observer      = (*Metrics)(nil)
	_ replayguard.QuotaObserver = (*Metrics)(nil)
)

type funcMetric struct {
	desc *prometheus.Desc
	kind prometheus.ValueType
	fn   func() float64
}

// New creates the collectors and registers them on reg. Collectors already
// registered by an earlier Metrics on the same registry (a configuration
// reload) are reused, so counters keep counting.
func New(reg prometheus.Registerer) (*Metrics, error) {
	return newMetrics(reg, false)
}

// NewRouted is New for a gateway of several routes: the requests, the
// guard's time, fail-open passes, idempotency events and quota refusals
// carry a route label, set by the Observer Route returns. Store calls
// carry none: the routes share the stores.
func NewRouted(reg prometheus.Registerer) (*Metrics, error) {
	return newMetrics(reg, true)
}

func newMetrics(reg prometheus.Registerer, routed bool) (*Metrics, error) {
	m := &Metrics{blooms: map[string]func() []bloom.BucketStats{}, routed: routed}
	labels := func(names ...string) []string {
		if routed {
			return append(names, "route")
		}
		return names
	}
	var err error
	if m.requests, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "replayguard_requests_total",
		Help: "Requests finished by the guard, by outcome (accepted, rejected, idempotent_replay) and problem code.",
	}, labels("outcome", "code"))); err != nil {
		return nil, err
	}
	guardOpts := prometheus.HistogramOpts{
		Name:    "replayguard_guard_duration_seconds",
		Help:    "Time spent in the guard before the request is passed on or answered.",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	}
	if routed {
		if m.guardDurations, err = register(reg, prometheus.NewHistogramVec(guardOpts, labels())); err != nil {
			return nil, err
		}
	} else if m.guardDuration, err = register(reg, prometheus.NewHistogram(guardOpts)); err != nil {
		return nil, err
	}
	if m.storeDuration, err = register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "replayguard_store_duration_seconds",
		Help:    "Latency of store calls by store and operation.",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	}, []string{"store", "op"})); err != nil {
		return nil, err
	}
	if m.storeErrors, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "replayguard_store_errors_total",
		Help: "Store calls that failed, by store and operation.",
	}, []string{"store", "op"})); err != nil {
		return nil, err
	}
	if m.failOpen, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "replayguard_fail_open_total",
		Help: "Requests let through because a store failed under fail_mode open.",
	}, labels("store"))); err != nil {
		return nil, err
	}
	if m.idempotency, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "replayguard_idempotency_events_total",
		Help: "Events of the idempotency step: executed, replayed, in_progress, reused, released, store_error, fail_open.",
	}, labels("event"))); err != nil {
		return nil, err
	}
	if m.quota, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "replayguard_quota_exceeded_total",
		Help: "Requests refused with quota_exceeded because their key entry used up its share of a bounded store, by store (nonce, idempotency).",
	}, labels("store"))); err != nil {
		return nil, err
	}
	if !routed {
		m.precreate()
	}
	// Another Metrics on reg (a reload, another Caddy handler): the
	// earlier one serves the watched figures, and the new one's watches
	// go there too. (The collector describes nothing, so the registry
	// cannot tell it is registered already.)
	if prev, ok := byRegistry.Load(reg); ok {
		return prev.(*Metrics), nil
	}
	if err := reg.Register(m); err != nil {
		return nil, err
	}
	byRegistry.Store(reg, m)
	return m, nil
}

// byRegistry holds the Metrics registered on each registry.
var byRegistry sync.Map

// precreate makes the series that read 0 before their first event.
func (m *Metrics) precreate() {
	m.events = map[string]prometheus.Counter{}
	for _, e := range []string{"executed", "replayed", "in_progress", "reused", "released", "store_error", "fail_open"} {
		m.events[e] = m.idempotency.WithLabelValues(e)
	}
	for _, s := range []string{"nonce", "idempotency"} {
		m.quota.WithLabelValues(s)
	}
}

// Route returns the Observer of route name: m itself unless m was made by
// NewRouted, else a view of m whose series carry route=name.
func (m *Metrics) Route(name string) *Metrics {
	if !m.routed {
		return m
	}
	l := prometheus.Labels{"route": name}
	v := &Metrics{
		requests:      m.requests.MustCurryWith(l),
		guardDuration: m.guardDurations.WithLabelValues(name),
		storeDuration: m.storeDuration,
		storeErrors:   m.storeErrors,
		failOpen:      m.failOpen.MustCurryWith(l),
		idempotency:   m.idempotency.MustCurryWith(l),
		quota:         m.quota.MustCurryWith(l),
	}
	v.precreate()
	return v
}

// ResetWatches drops the watched stores of a configuration being
// replaced (the binary's reload); the new configuration watches its own.
func (m *Metrics) ResetWatches() *Metrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blooms = map[string]func() []bloom.BucketStats{}
	m.funcs, m.hists = nil, nil
	return m
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

// seriesRef holds a series once it was first looked up.
type seriesRef[T any] struct{ p atomic.Pointer[T] }

// get returns the series, looking it up with lookup the first time.
// Lookups racing on first use find the same series.
func (r *seriesRef[T]) get(lookup func() T) T {
	if s := r.p.Load(); s != nil {
		return *s
	}
	s := lookup()
	r.p.Store(&s)
	return s
}

// The label values of store calls whose series are kept (storeIndex).
var (
	storeNames = [...]string{"nonce", "idempotency"}
	storeOps   = [...]string{"add", "claim", "renew", "complete", "release"}
)

// storeIndex returns where the series of store and op is kept, ok false
// for label values looked up each time.
func storeIndex(store, op string) (s, o int, ok bool) {
	switch store {
	case "nonce":
		s = 0
	case "idempotency":
		s = 1
	default:
		return 0, 0, false
	}
	for o = range storeOps {
		if storeOps[o] == op {
			return s, o, true
		}
	}
	return 0, 0, false
}

// ObserveRequest implements replayguard.Observer.
func (m *Metrics) ObserveRequest(code string, d time.Duration) {
	switch code {
	case "":
		m.accepted.get(func() prometheus.Counter { return m.requests.WithLabelValues("accepted", "") }).Inc()
	case "idempotent_replay":
		m.replayed.get(func() prometheus.Counter { return m.requests.WithLabelValues("idempotent_replay", "") }).Inc()
	default:
		m.requests.WithLabelValues("rejected", code).Inc()
	}
	m.guardDuration.Observe(d.Seconds())
}

// ObserveStore implements replayguard.Observer.
func (m *Metrics) ObserveStore(store, op string, d time.Duration, err error) {
	if s, o, ok := storeIndex(store, op); ok {
		m.stores[s][o].get(func() prometheus.Observer { return m.storeDuration.WithLabelValues(store, op) }).Observe(d.Seconds())
	} else {
		m.storeDuration.WithLabelValues(store, op).Observe(d.Seconds())
	}
	if err != nil {
		m.storeErrors.WithLabelValues(store, op).Inc()
	}
}

// ObserveFailOpen implements replayguard.Observer.
func (m *Metrics) ObserveFailOpen(store string) {
	m.failOpen.WithLabelValues(store).Inc()
}

// ObserveQuotaExceeded implements replayguard.QuotaObserver.
func (m *Metrics) ObserveQuotaExceeded(store string) {
	m.quota.WithLabelValues(store).Inc()
}

// ObserveIdempotency implements replayguard.Observer.
func (m *Metrics) ObserveIdempotency(event string) {
	if c, ok := m.events[event]; ok {
		c.Inc()
		return
	}
	m.idempotency.WithLabelValues(event).Inc()
}

var (
	bloomFill = prometheus.NewDesc("replayguard_bloom_fill_ratio",
		"Fraction of bits set in a Bloom bucket (by store and bucket start).", []string{"store", "bucket"}, nil)
	bloomFPR = prometheus.NewDesc("replayguard_bloom_estimated_false_positive_rate",
		"Estimated false-positive rate of a Bloom bucket, from its fill.", []string{"store", "bucket"}, nil)
	bloomEntries = prometheus.NewDesc("replayguard_bloom_entries",
		"Entries added to a Bloom bucket.", []string{"store", "bucket"}, nil)
	bloomSubFilters = prometheus.NewDesc("replayguard_bloom_subfilters",
		"Sub-filters of a Bloom bucket (more than the partitions means it grew).", []string{"store", "bucket"}, nil)
)

// WatchBloom exports the per-bucket statistics of a Bloom store under the
// label store=name.
func (m *Metrics) WatchBloom(name string, stats func() []bloom.BucketStats) {
	m.mu.Lock()
	m.blooms[name] = stats
	m.mu.Unlock()
}

// WatchFunc exports fn as a gauge (counter when counter is true) named name.
func (m *Metrics) WatchFunc(name, help string, counter bool, fn func() float64) {
	kind := prometheus.GaugeValue
	if counter {
		kind = prometheus.CounterValue
	}
	m.mu.Lock()
	m.funcs = append(m.funcs, funcMetric{desc: prometheus.NewDesc(name, help, nil, nil), kind: kind, fn: fn})
	m.mu.Unlock()
}

// Histogram is a cumulative histogram read at each collection: Counts[i]
// observations were at most Bounds[i]; Count and Sum cover all of them.
type Histogram struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

type histMetric struct {
	desc *prometheus.Desc
	fn   func() Histogram
}

// WatchHistogram exports fn as a histogram named name.
func (m *Metrics) WatchHistogram(name, help string, fn func() Histogram) {
	m.mu.Lock()
	m.hists = append(m.hists, histMetric{desc: prometheus.NewDesc(name, help, nil, nil), fn: fn})
	m.mu.Unlock()
}

// Describe implements prometheus.Collector (unchecked: the watched series
// come and go with buckets).
func (m *Metrics) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector for the watched stores.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	blooms := make(map[string]func() []bloom.BucketStats, len(m.blooms))
	for k, v := range m.blooms {
		blooms[k] = v
	}
	funcs := append([]funcMetric(nil), m.funcs...)
	hists := append([]histMetric(nil), m.hists...)
	m.mu.Unlock()
	for name, stats := range blooms {
		for _, b := range stats() {
			bucket := strconv.FormatInt(b.Start.Unix(), 10)
			ch <- prometheus.MustNewConstMetric(bloomFill, prometheus.GaugeValue, b.FillRatio, name, bucket)
			ch <- prometheus.MustNewConstMetric(bloomFPR, prometheus.GaugeValue, b.FalsePositiveRate, name, bucket)
			ch <- prometheus.MustNewConstMetric(bloomEntries, prometheus.GaugeValue, float64(b.Entries), name, bucket)
			ch <- prometheus.MustNewConstMetric(bloomSubFilters, prometheus.GaugeValue, float64(b.SubFilters), name, bucket)
		}
	}
	for _, f := range funcs {
		ch <- prometheus.MustNewConstMetric(f.desc, f.kind, f.fn())
	}
	for _, h := range hists {
		v := h.fn()
		buckets := make(map[float64]uint64, len(v.Bounds))
		for i, b := range v.Bounds {
			buckets[b] = v.Counts[i]
		}
		ch <- prometheus.MustNewConstHistogram(h.desc, v.Count, v.Sum, buckets)
	}
}
