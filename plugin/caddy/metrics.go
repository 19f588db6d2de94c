package replayguardcaddy

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/replayguard/replayguard/metrics"
	"github.com/replayguard/replayguard/stores"
)

// watchDisk registers the figures of set's disk store, if it has one, on
// reg, labelled path=<its directory>: a configuration may hold stores of
// several directories, and each series names its own.
func watchDisk(reg prometheus.Registerer, set *stores.Set) error {
	db := set.Disk()
	if db == nil {
		return nil
	}
	c := &diskCollector{labels: prometheus.Labels{"path": db.Path()}}
	set.WatchDisk(c)
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return err
		}
	}
	return nil
}

// diskCollector is the stores.HistogramWatcher of one disk store, read at
// each collection.
type diskCollector struct {
	labels prometheus.Labels
	values []diskValue
	hists  []diskHistogram
}

var _ stores.HistogramWatcher = (*diskCollector)(nil)

type diskValue struct {
	desc *prometheus.Desc
	kind prometheus.ValueType
	fn   func() float64
}

type diskHistogram struct {
	desc *prometheus.Desc
	fn   func() metrics.Histogram
}

// WatchFunc implements stores.HistogramWatcher.
func (c *diskCollector) WatchFunc(name, help string, counter bool, fn func() float64) {
	kind := prometheus.GaugeValue
	if counter {
		kind = prometheus.CounterValue
	}
	c.values = append(c.values, diskValue{desc: prometheus.NewDesc(name, help, nil, c.labels), kind: kind, fn: fn})
}

// WatchHistogram implements stores.HistogramWatcher.
func (c *diskCollector) WatchHistogram(name, help string, fn func() metrics.Histogram) {
	c.hists = append(c.hists, diskHistogram{desc: prometheus.NewDesc(name, help, nil, c.labels), fn: fn})
}

// Describe implements prometheus.Collector.
func (c *diskCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, v := range c.values {
		ch <- v.desc
	}
	for _, h := range c.hists {
		ch <- h.desc
	}
}

// Collect implements prometheus.Collector.
func (c *diskCollector) Collect(ch chan<- prometheus.Metric) {
	for _, v := range c.values {
		ch <- prometheus.MustNewConstMetric(v.desc, v.kind, v.fn())
	}
	for _, h := range c.hists {
		s := h.fn()
		buckets := make(map[float64]uint64, len(s.Bounds))
		for i, b := range s.Bounds {
			buckets[b] = s.Counts[i]
		}
		ch <- prometheus.MustNewConstHistogram(h.desc, s.Count, s.Sum, buckets)
	}
}
