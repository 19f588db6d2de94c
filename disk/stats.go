package disk

import (
	"sync"
	"sync/atomic"
	"time"
)

// commitBounds are the upper bounds, in seconds, of the commit-time
// histogram in Stats.
var commitBounds = [...]float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}

// syncBounds are the upper bounds, in seconds, of the log-sync histogram.
var syncBounds = [...]float64{0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1, 1}

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
	// FileBytes is the size of the store's files.
	FileBytes int64
	// LiveBytes is what the entries held count against MaxBytes.
	LiveBytes int64
	// Commit is the time of each group commit, from the writer taking
	// its first operation to its sync: what a write waits for.
	Commit Histogram
	// Sync is the time of each sync of the engine's log (fsync); one
	// sync may cover several commits.
	Sync Histogram
	// Batch is how many operations each commit carried.
	Batch Histogram
	// Reclaimed counts the expired entries removed.
	Reclaimed uint64
	// WriteErrors counts the writes the file system refused (a full or
	// read-only disk; tried again every 100 ms until they succeed) and
	// the commits that failed.
	WriteErrors uint64
}

type stats struct {
	mu          sync.Mutex
	commit      hist
	batch       hist
	sync        hist
	writeErrors atomic.Uint64
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

func (s *stats) observeCommit(d time.Duration, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commit.observe(commitBounds[:], d.Seconds())
	s.batch.observe(batchBounds[:], float64(n))
}

func (s *stats) observeSync(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sync.observe(syncBounds[:], d.Seconds())
}

func (s *stats) writeError() { s.writeErrors.Add(1) }

// Stats returns the store's figures so far.
func (db *DB) Stats() Stats {
	size := db.diskBytes()
	s := &db.stats
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		FileBytes:   size,
		LiveBytes:   s.liveBytes.Load(),
		Commit:      s.commit.export(commitBounds[:]),
		Batch:       s.batch.export(batchBounds[:]),
		Sync:        s.sync.export(syncBounds[:]),
		Reclaimed:   s.reclaimed.Load(),
		WriteErrors: s.writeErrors.Load(),
	}
}

// diskBytes returns the size of the store's files.
func (db *DB) diskBytes() int64 {
	db.engine.RLock()
	defer db.engine.RUnlock()
	if db.engine.closed {
		return 0
	}
	return int64(db.pdb.Metrics().DiskSpaceUsage())
}
