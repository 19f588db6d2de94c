package stores

import (
	"errors"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/disk"
	"github.com/replayguard/replayguard/metrics"
)

// WithDisk sets the directory and settings of the disk stores (the
// `disk:` section). Its Path must be set when a store is "disk".
func WithDisk(c disk.Config) Option {
	return func(o *options) { o.disk = c }
}

// WithDiskDB makes the disk stores use db, already open, instead of
// opening disk.path: a Set replacing another (the binary's reload) keeps
// its file. The Set closes db with its stores, as one it opened: the Set
// that had it hands it over with ReleaseDisk.
func WithDiskDB(db *disk.DB) Option {
	return func(o *options) { o.diskDB = db }
}

// openDisk returns the store's DB, opening it on first use: the nonce and
// idempotency stores share one store.
func (s *Set) openDisk(cfg replayguard.Config, o options) (*disk.DB, error) {
	if s.disk != nil {
		return s.disk, nil
	}
	if o.diskDB != nil {
		s.disk, s.ownsDisk = o.diskDB, true
		s.pingers = append(s.pingers, namedPinger{"disk", o.diskDB})
		return o.diskDB, nil
	}
	c := o.disk.WithDefaults()
	if c.Path == "" {
		return nil, &replayguard.FieldError{Field: "disk.path", Err: errors.New("required when a store is \"disk\"")}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	db, err := disk.Open(c.Path, append(c.Options(cfg.KeyShare(c.KeyShare)), disk.WithClock(o.now))...)
	if err != nil {
		return nil, err
	}
	s.disk, s.ownsDisk = db, true
	s.pingers = append(s.pingers, namedPinger{"disk", db})
	return db, nil
}

// ReleaseDisk hands the disk store's DB over: Close leaves it open, for
// the Set that took it with WithDiskDB.
func (s *Set) ReleaseDisk() { s.ownsDisk = false }

// Disk returns the disk store's DB, nil when no store is "disk".
func (s *Set) Disk() *disk.DB { return s.disk }

// HistogramWatcher is what WatchDisk reports to; *metrics.Metrics is one.
type HistogramWatcher interface {
	WatchFunc(name, help string, counter bool, fn func() float64)
	WatchHistogram(name, help string, fn func() metrics.Histogram)
}

// WatchDisk reports the disk store's figures to w, when a store is
// "disk": the file's size, the bytes its entries count against
// disk.max_bytes, the time and size of each group commit, the expired
// entries reclaimed and the commits that failed.
func (s *Set) WatchDisk(w HistogramWatcher) {
	db := s.disk
	if db == nil {
		return
	}
	w.WatchFunc("replayguard_disk_file_bytes", "Size of the disk store's files.", false,
		func() float64 { return float64(db.Stats().FileBytes) })
	w.WatchFunc("replayguard_disk_live_bytes", "Bytes the disk store's live entries count against disk.max_bytes.", false,
		func() float64 { return float64(db.Stats().LiveBytes) })
	w.WatchFunc("replayguard_disk_reclaimed_total", "Expired nonces and idempotency records removed from the disk store.", true,
		func() float64 { return float64(db.Stats().Reclaimed) })
	w.WatchFunc("replayguard_disk_write_errors_total", "Writes the file system refused (a full or read-only disk; retried while requests get store_unavailable) and disk store commits that failed.", true,
		func() float64 { return float64(db.Stats().WriteErrors) })
	w.WatchHistogram("replayguard_disk_commit_seconds", "Time of one disk store group commit, from its first write to its log's sync.",
		func() metrics.Histogram { return metrics.Histogram(db.Stats().Commit) })
	w.WatchHistogram("replayguard_disk_fsync_seconds", "Time of one sync of the disk store's log.",
		func() metrics.Histogram { return metrics.Histogram(db.Stats().Sync) })
	w.WatchHistogram("replayguard_disk_commit_batch_size", "Writes carried by one disk store group commit (sharing its fsync).",
		func() metrics.Histogram { return metrics.Histogram(db.Stats().Batch) })
}
