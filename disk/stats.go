package disk

import (
	"sync"
	"sync/atomic"
	"time"
)

// commitBounds are the upper bounds, in seconds, of the commit-time
// histogram in Stats.
var commitBounds = [...]float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}

// batchBounds are the upper bounds of the batch-size histogram.
var batchBounds = [...]float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 1024}

// Histogram is a cumulative histogram: Counts[i] observations were at most
// Bounds[i]; Count and Sum cover every observation.
type Histogram struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

// Stats is what the store reports for metrics.
type Stats struct {
	// FileBytes is the size of the file.
	FileBytes int64
	// LiveBytes is what the entries held count against MaxBytes.
	LiveBytes int64
	// Commit is the time of each commit: writing its pages and waiting
	// for fsync (two, the data and then the meta page).
	Commit Histogram
	// Batch is how many operations each commit carried.
	Batch Histogram
	// Reclaimed counts the expired entries removed.
	Reclaimed uint64
	// WriteErrors counts the commits that failed (a full or read-only
	// disk); every operation of such a commit failed with it.
	WriteErrors uint64
}

type stats struct {
	mu          sync.Mutex
	commit      hist
	batch       hist
	writeErrors uint64
	reclaimed   atomic.Uint64
	liveBytes   atomic.Int64
}

type hist struct {
	counts []uint64 // per bound, made at the first observation
	count  uint64
	sum    float64
}

func (h *hist) observe(bounds []float64, v float64) {
	if h.counts == nil {
		h.counts = make([]uint64, len(bounds))
	}
	for i, b := range bounds {
		if v <= b {
			h.counts[i]++
		}
	}
	h.count++
	h.sum += v
}

func (h *hist) export(bounds []float64) Histogram {
	counts := make([]uint64, len(bounds))
	copy(counts, h.counts)
	return Histogram{Bounds: append([]float64(nil), bounds...), Counts: counts, Count: h.count, Sum: h.sum}
}

func (s *stats) observeCommit(d time.Duration, n int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commit.observe(commitBounds[:], d.Seconds())
	s.batch.observe(batchBounds[:], float64(n))
	if err != nil {
		s.writeErrors++
	}
}

// Stats returns the store's figures so far.
func (db *DB) Stats() Stats {
	size, _ := fileSize(db.file)
	s := &db.stats
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		FileBytes:   size,
		LiveBytes:   s.liveBytes.Load(),
		Commit:      s.commit.export(commitBounds[:]),
		Batch:       s.batch.export(batchBounds[:]),
		Reclaimed:   s.reclaimed.Load(),
		WriteErrors: s.writeErrors,
	}
}
