package disk

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"syscall"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// formatVersion is the store's layout (layout.go), recorded under its
// meta key; a store of another version is refused rather than misread.
const formatVersion = 2

// maxBatch bounds how many operations one commit carries.
const maxBatch = 1024

// reapBatch bounds how many expired entries one commit removes, so that
// reclaiming a backlog never stalls the requests sharing its commits.
const reapBatch = 2000

// Sentinel errors of the store itself. Store calls wrap them in the
// calling interface's own sentinel (nonce.ErrUnavailable,
// idempotency.ErrUnavailable).
var (
	// ErrLocked reports a directory another store holds.
	ErrLocked = errors.New("disk: store in use")
	// ErrDamaged reports a store that cannot be trusted; Open refuses it.
	ErrDamaged = errors.New("disk: store damaged")
	// ErrFull reports a store at its MaxBytes.
	ErrFull = errors.New("disk: store full")
	// ErrClosed reports a call on a closed store.
	ErrClosed = errors.New("disk: store closed")
	// ErrTimeout reports a call that did not commit within the timeout.
	ErrTimeout = errors.New("disk: store call timed out")
)

// DB is the durable embedded store: the nonces and the idempotency
// records of one gateway, in a directory only it uses, written through
// an embedded log-structured engine (github.com/cockroachdb/pebble). One
// writer goroutine decides every write against an index kept in memory
// and gathers the writes queued while the last batch synced into the
// next one, which the engine appends to its log with one sync (group
// commit). A call returns only once its write is on disk. Reads that need no write
// (a replayed nonce, a stored response) are answered from the index and
// the engine. Expired entries are removed in bounded batches by a reaper;
// the engine's compactions return their room. Safe for concurrent use.
type DB struct {
	pdb  *pebble.DB
	fs   *roomFS
	path string // directory, absolute
	cfg  options

	ops     chan *op
	closing chan struct{}
	stopped chan struct{}
	reaped  chan struct{}
	closed  sync.Once
	release func()
	// lock is the directory's, held from Open to Close.
	lock *pebble.Lock
	// engine guards reads from outside the writer against Close.
	engine struct {
		sync.RWMutex
		closed bool
	}

	// full is set when a write was refused for MaxBytes, cleared when
	// the reaper frees room; Ping reports it.
	full atomic.Bool
	// failing holds the error of a write the file system refused (a
	// full or read-only disk), nil once writes go through again; Ping
	// reports it.
	failing atomic.Pointer[error]

	// ix finds entries by key; ledger (the writer's alone) counts what
	// each owner holds; reapFrom (the writer's alone) is, per owner, the
	// expiry from which its entries may still be expired, so that the
	// reaper seeks past the ones it removed.
	ix       *index
	ledger   *ledger
	reapFrom map[uint32]int64
	// held (the writer's alone) keeps the value of every in-progress
	// record written since Open, so that completing, renewing or
	// releasing one does not read it back from the engine.
	held map[digest][]byte

	// corrupt holds the first damage the engine found.
	corrupt atomic.Pointer[error]

	nonces  *Nonces
	records *Records

	stats stats
}

// Option configures Open.
type Option func(*options)

type options struct {
	now          func() time.Time
	fsync        bool
	maxBytes     int64
	keyShare     int64
	lockTimeout  time.Duration
	timeout      time.Duration
	reapInterval time.Duration
	fs           vfs.FS // the file system under roomFS; tests replace it
}

// WithClock sets the clock that decides expiry and leases. Default
// time.Now.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithFsync sets whether a commit waits for stable storage (see
// Config.Fsync). Default true.
func WithFsync(on bool) Option { return func(o *options) { o.fsync = on } }

// WithMaxBytes bounds what the store holds (see Config.MaxBytes); 0 or
// less: no bound. Default DefaultMaxBytes.
func WithMaxBytes(n int64) Option { return func(o *options) { o.maxBytes = n } }

// WithKeyShare bounds the bytes one owner's nonces and records may hold
// together, so that one key cannot fill the store for every other: past
// it, that owner's new nonces and claims, and completions that would grow
// its records past it, fail with a quota error saying when its earliest
// entry expires. Entries without an owner are bounded by WithMaxBytes
// alone. Default 0: no per-owner bound.
func WithKeyShare(n int64) Option { return func(o *options) { o.keyShare = n } }

// WithLockTimeout sets how long Open waits for a directory another store
// holds. Default DefaultLockTimeout.
func WithLockTimeout(d time.Duration) Option { return func(o *options) { o.lockTimeout = d } }

// WithTimeout bounds each store call, its commit included. Default
// DefaultTimeout.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithReapInterval sets how often expired entries are removed. Default
// DefaultReapInterval.
func WithReapInterval(d time.Duration) Option { return func(o *options) { o.reapInterval = d } }

// Open opens the store in directory dir, creating both when missing. Only
// one store may hold a directory: another process's waits up to the lock
// timeout and then fails with ErrLocked, as does one of this process while
// an earlier store of the same directory is not closed. A file that is
// damaged — truncated, overwritten, of another format — is refused with an
// error wrapping ErrDamaged that names it and the recovery step; Open never
// starts empty in its place. Opening walks the whole file once to check it.
func Open(dir string, opts ...Option) (*DB, error) {
	o := options{now: time.Now, fsync: true, maxBytes: DefaultMaxBytes, lockTimeout: DefaultLockTimeout,
		timeout: DefaultTimeout, reapInterval: DefaultReapInterval, fs: vfs.Default}
	for _, opt := range opts {
		opt(&o)
	}
	if dir == "" {
		return nil, errors.New("disk: no directory given")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	release, err := claimDir(abs, o.lockTimeout)
	if err != nil {
		return nil, err
	}
	db := &DB{path: abs, cfg: o, release: release, reapFrom: map[uint32]int64{}, held: map[digest][]byte{},
		ops: make(chan *op, maxBatch), closing: make(chan struct{}), stopped: make(chan struct{}), reaped: make(chan struct{})}
	db.nonces, db.records = &Nonces{db: db}, &Records{db: db}
	db.fs = &roomFS{FS: o.fs, onRefused: db.refused, onWritten: db.written, observeSync: db.stats.observeSync}
	if err := db.open(); err != nil {
		release()
		return nil, err
	}
	go db.write()
	go db.reap()
	return db, nil
}

// open opens and checks the store. An existing store is opened only when
// the engine finds its files (never created empty in its place), and
// every entry is read once, which checks every block read against its
// checksum; the engine's fatal errors, which would end the process, are
// turned into panics on the opening goroutine and reported as damage.
func (db *DB) open() error {
	type result struct {
		pdb *pebble.DB
		err error
	}
	if err := db.checkDir(); err != nil {
		return err
	}
	existed, err := hasEntries(db.path)
	if err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	done := make(chan result, 1)
	go func() {
		var p *pebble.DB
		defer func() {
			if r := recover(); r != nil {
				if p != nil {
					db.closeQuietly(p)
				}
				done <- result{err: db.damaged(fmt.Errorf("%v", r))}
			}
		}()
		debug.SetPanicOnFault(true)
		var err error
		p, err = db.openEngine(existed)
		if err != nil {
			done <- result{err: err}
			return
		}
		if err := db.check(p, existed); err != nil {
			db.closeQuietly(p)
			done <- result{err: err}
			return
		}
		db.ix = newIndex()
		db.ledger, err = load(p, db.ix)
		if c := db.corrupt.Load(); err == nil && c != nil {
			err = *c
		}
		if err != nil {
			db.closeQuietly(p)
			done <- result{err: db.damaged(err)}
			return
		}
		done <- result{pdb: p}
	}()
	r := <-done
	if r.err != nil {
		return r.err
	}
	db.pdb = r.pdb
	db.stats.liveBytes.Store(db.ledger.total)
	return nil
}

// openEngine opens the engine's files in the directory, waiting up to the
// lock timeout while another process holds them. The lock is the DB's to
// release, after the engine closed.
func (db *DB) openEngine(existed bool) (*pebble.DB, error) {
	lock, err := db.lockDir()
	if err != nil {
		return nil, err
	}
	opts := &pebble.Options{
		FS:     db.fs,
		Lock:   lock,
		Logger: panicLogger{},
		EventListener: &pebble.EventListener{
			// Damage found by the engine's own reads (table statistics,
			// compactions) is the store's to report, not a reason to end
			// the process: Open refuses the store, a running one fails Ping.
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				err := fmt.Errorf("%s: %w", info.Path, info.Details)
				db.corrupt.CompareAndSwap(nil, &err)
				slog.Error("disk store: damaged file", "path", info.Path, "error", info.Details)
			},
			BackgroundError: func(err error) { slog.Warn("disk store: " + err.Error()) },
		},
		ErrorIfNotExists: existed,
		MemTableSize:     memTableSize,
	}
	p, err := func() (*pebble.DB, error) {
		defer func() {
			if r := recover(); r != nil {
				_ = lock.Close()
				panic(r) // open's recover reports it as damage
			}
		}()
		return pebble.Open(db.path, opts)
	}()
	switch {
	case err == nil:
		db.lock = lock
		return p, nil
	case existed:
		err = db.damaged(err)
	default:
		err = fmt.Errorf("disk: %s: %w", db.path, err)
	}
	_ = lock.Close()
	return nil, err
}

// lockDir takes the directory's lock file, waiting up to the lock timeout
// while another process holds it. A lock file that cannot be created (a
// directory not writable) fails at once.
func (db *DB) lockDir() (*pebble.Lock, error) {
	deadline := time.Now().Add(db.cfg.lockTimeout)
	for {
		lock, err := pebble.LockDirectory(db.path, db.fs)
		switch {
		case err == nil:
			return lock, nil
		case !heldElsewhere(err):
			return nil, fmt.Errorf("disk: %s: %w", db.path, err)
		case time.Now().After(deadline):
			return nil, db.locked("another process holds it")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// heldElsewhere reports the error of a lock another process holds: the
// lock call's own EAGAIN or EACCES, not one of creating the lock file.
func heldElsewhere(err error) bool {
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		return false
	}
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES)
}

// memTableSize is the engine's write buffer: entries are written to its
// log and kept in memory until this many bytes are flushed to a table.
const memTableSize = 16 << 20

// panicLogger turns the engine's fatal errors, which would end the
// process, into panics, so that opening a damaged store fails instead;
// its errors (a failed background compaction) go to the default logger.
type panicLogger struct{}

func (panicLogger) Infof(string, ...any) {}
func (panicLogger) Errorf(format string, args ...any) {
	slog.Warn("disk store: " + fmt.Sprintf(format, args...))
}
func (panicLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

// checkDir refuses a directory holding a store of the earlier one-file
// layout, which this store cannot read.
func (db *DB) checkDir() error {
	old := filepath.Join(db.path, legacyFile)
	if _, err := os.Stat(old); err == nil {
		return fmt.Errorf("%w: %s is a store of an earlier, one-file format, which this version cannot read; "+
			"the store refuses to start rather than start empty. Stop every process using %s and move that file aside, "+
			"or move the directory aside (the docs' operations guide, \"A damaged disk store\")", ErrDamaged, old, db.path)
	}
	return nil
}

// legacyFile is the file of the earlier one-file layout.
const legacyFile = "replayguard.db"

// hasEntries reports a directory with files in it: an existing store.
func hasEntries(dir string) (bool, error) {
	names, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, e := range names {
		if e.Name() != "LOCK" {
			return true, nil
		}
	}
	return false, nil
}

// check verifies that an opened store is one of this format and marks a
// new one.
func (db *DB) check(p *pebble.DB, existed bool) error {
	v, closer, err := p.Get(keyFormat)
	switch {
	case err == nil:
		defer closer.Close()
		if len(v) != 8 || binary.BigEndian.Uint64(v) != formatVersion {
			return db.damaged(fmt.Errorf("format %x, want %d", v, formatVersion))
		}
		return nil
	case !errors.Is(err, pebble.ErrNotFound):
		return db.damaged(err)
	case existed:
		return db.damaged(errors.New("no replayguard metadata: not a replayguard store, or damaged"))
	}
	if err := p.Set(keyFormat, binary.BigEndian.AppendUint64(nil, formatVersion), pebble.Sync); err != nil {
		return fmt.Errorf("disk: %s: %w", db.path, err)
	}
	return nil
}

func (db *DB) damaged(cause error) error {
	return fmt.Errorf("%w: the store in %s cannot be read (%w); the store refuses to start rather than start empty. "+
		"To recover, stop every process using %s, move that directory aside (keep it for inspection) and start again: "+
		"the new store starts empty, so replays inside the timestamp window and retries of requests it had stored are no longer recognised "+
		"until they expire (the docs' operations guide, \"A damaged disk store\")", ErrDamaged, db.path, cause, db.path)
}

func (db *DB) locked(why string) error {
	return fmt.Errorf("%w: %s is held (%s; waited %s). A disk store serves one gateway process; "+
		"to run several instances, share a Redis (nonce.store and idempotency.store: redis) or PostgreSQL (idempotency.store: postgres) instead",
		ErrLocked, db.path, why, db.cfg.lockTimeout)
}

func (db *DB) closeQuietly(p *pebble.DB) {
	defer func() {
		_ = recover()
		if db.lock != nil {
			_ = db.lock.Close()
			db.lock = nil
		}
	}()
	_ = p.Close()
}

// dirs holds the directories this process's stores have open; a reopen
// waits until the holder closed.
var dirs = struct {
	sync.Mutex
	held map[string]chan struct{}
}{held: map[string]chan struct{}{}}

// claimDir takes dir for one store of this process, waiting up to timeout
// for an earlier one to close. The returned func gives it back.
func claimDir(dir string, timeout time.Duration) (func(), error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		dirs.Lock()
		held := dirs.held[dir]
		if held == nil {
			ch := make(chan struct{})
			dirs.held[dir] = ch
			dirs.Unlock()
			var once sync.Once
			return func() {
				once.Do(func() {
					dirs.Lock()
					delete(dirs.held, dir)
					dirs.Unlock()
					close(ch)
				})
			}, nil
		}
		dirs.Unlock()
		select {
		case <-held:
		case <-deadline.C:
			return nil, fmt.Errorf("%w: %s is held by another store of this process, not closed after %s", ErrLocked, dir, timeout)
		}
	}
}

// Path returns the store's directory.
func (db *DB) Path() string { return db.path }

// Close stops the writer and the reaper after the queued writes are
// committed, and closes the engine. Calls after Close fail with ErrClosed.
// A store whose disk is full or read-only at Close cannot write what it
// holds in memory to tables and reports the error; what it acknowledged
// is in its log.
func (db *DB) Close() (err error) {
	db.closed.Do(func() {
		close(db.closing)
		db.fs.closing.Store(true)
		<-db.stopped
		<-db.reaped
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("disk: closing %s: %v", db.path, r)
			}
			db.release()
		}()
		db.engine.Lock()
		defer db.engine.Unlock()
		db.engine.closed = true
		err = errors.Join(db.pdb.Close(), db.lock.Close())
	})
	return err
}

// refused and written follow the file system's refusals of writes.
func (db *DB) refused(err error) {
	err = fmt.Errorf("disk: %s: %w", db.path, err)
	db.failing.Store(&err)
	db.stats.writeError()
}

func (db *DB) written() { db.failing.Store(nil) }

// pingBytes is what Ping writes: room for a few requests' entries.
const pingBytes = 64 << 10

// Ping reports the store healthy when it can take more writes: it commits
// pingBytes through the writer, as requests do. A store at its MaxBytes
// fails it, as does one whose file system refused a write (a full or
// read-only disk) until writes go through again.
func (db *DB) Ping(ctx context.Context) error {
	if db.full.Load() {
		return fmt.Errorf("%w: %d bytes held, max_bytes %d", ErrFull, db.stats.liveBytes.Load(), db.cfg.maxBytes)
	}
	if err := db.failing.Load(); err != nil {
		return fmt.Errorf("writes are failing: %w", *err)
	}
	if err := db.corrupt.Load(); err != nil {
		return fmt.Errorf("%w: %w", ErrDamaged, *err)
	}
	probe := make([]byte, pingBytes)
	return db.doInternal(ctx, func(w *wtx) error {
		binary.BigEndian.PutUint64(probe, uint64(w.now))
		return w.b.Set(keyPing, probe, nil)
	})
}

// op is one queued write; apply runs in the writer and returns the
// write's own outcome, which never fails the batch.
type op struct {
	ctx   context.Context
	apply func(w *wtx) error
	err   error
	done  chan struct{}
	// internal marks the store's own writes (Ping's probe, the reaper).
	internal bool
}

// do queues apply and waits until its batch is on disk. The error is
// apply's outcome, or one wrapping ErrTimeout, ErrClosed or the commit's
// failure.
func (db *DB) do(ctx context.Context, apply func(w *wtx) error) error {
	return db.queue(ctx, &op{ctx: ctx, apply: apply})
}

// doInternal is do for the store's own writes (see op.internal).
func (db *DB) doInternal(ctx context.Context, apply func(w *wtx) error) error {
	return db.queue(ctx, &op{ctx: ctx, apply: apply, internal: true})
}

func (db *DB) queue(ctx context.Context, o *op) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o.done = make(chan struct{})
	timer := time.NewTimer(db.cfg.timeout)
	defer timer.Stop()
	select {
	case <-db.closing:
		return ErrClosed
	default:
	}
	select {
	case db.ops <- o:
	case <-db.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return fmt.Errorf("%w after %s (queue full)", ErrTimeout, db.cfg.timeout)
	}
	select {
	case <-o.done:
		return o.err
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return fmt.Errorf("%w after %s", ErrTimeout, db.cfg.timeout)
	}
}

// write is the writer goroutine: it commits queued operations in batches
// until Close, then what is still queued. Operations queued while a batch
// commits wait in the queue and form the next batch, which is applied once
// the one before is on disk: one log sync per batch, and nothing a batch
// changed is visible before it is synced.
func (db *DB) write() {
	defer close(db.stopped)
	batch := make([]*op, 0, maxBatch)
	for {
		select {
		case o := <-db.ops:
			batch = append(batch[:0], o)
		case <-db.closing:
			for {
				batch = batch[:0]
				db.drain(&batch)
				if len(batch) == 0 {
					return
				}
				db.commit(batch)
			}
		}
		db.drain(&batch)
		db.commit(batch)
	}
}

func (db *DB) drain(batch *[]*op) {
	for len(*batch) < maxBatch {
		select {
		case o := <-db.ops:
			*batch = append(*batch, o)
		default:
			return
		}
	}
}

// commit applies batch as one write of the engine, waits for its sync,
// publishes its changes (to the next batches and to readers) and answers
// its operations. A batch whose write or sync failed fails every
// operation it carried; the changes of one applied but not synced are
// published all the same, so that what the engine may hold is never
// missing from the index.
func (db *DB) commit(batch []*op) {
	start := time.Now()
	now := db.cfg.now().UnixNano()
	b := db.pdb.NewBatch()
	w := newWtx(b, now, db)
	for _, o := range batch {
		if err := o.ctx.Err(); err != nil {
			o.err = err // the caller gave up: write nothing for it
			continue
		}
		o.err = o.apply(w)
	}
	var err error
	if !b.Empty() {
		if db.cfg.fsync {
			if err = db.pdb.ApplyNoSyncWait(b, pebble.Sync); err == nil {
				err = b.SyncWait()
				w.publish()
			}
		} else if err = db.pdb.Apply(b, pebble.NoSync); err == nil {
			w.publish()
		}
		if err != nil {
			err = fmt.Errorf("disk: commit: %w", err)
			db.stats.writeError()
		}
	} else {
		w.publish()
	}
	_ = b.Close()
	db.stats.observeCommit(time.Since(start), len(batch))
	for _, o := range batch {
		if err != nil {
			o.err = err
		}
		close(o.done)
	}
}

// reap is the reaper goroutine: every interval it removes expired
// entries, a bounded batch per commit, until none is left, and has the
// engine flush its log once it holds more than twice the live entries
// (see flushDue), so that the store's files follow what it holds.
func (db *DB) reap() {
	defer close(db.reaped)
	t := time.NewTicker(db.cfg.reapInterval)
	defer t.Stop()
	for {
		select {
		case <-db.closing:
			return
		case <-t.C:
		}
		for {
			var n int
			var held int64
			err := db.doInternal(context.Background(), func(w *wtx) error {
				n = w.reapAll(reapBatch)
				held = w.bytes
				return nil
			})
			if err == nil && n > 0 && (held < db.cfg.maxBytes || db.cfg.maxBytes <= 0) {
				db.full.Store(false) // room was freed: requests may fit again
			}
			if err != nil || n < reapBatch {
				break
			}
		}
		if flushDue(db.pdb.Metrics().WAL.Size, db.stats.liveBytes.Load()) {
			_, _ = db.pdb.AsyncFlush()
		}
	}
}

// minFlush is the least log a flush is asked for at.
const minFlush = 64 << 10

// flushDue reports a log of walBytes worth flushing to a table while the
// live entries count live bytes: past twice what is live, most of the log
// is entries since removed, which a flush and the compactions after it
// drop. Without it the log grows to the engine's memory table size
// (memTableSize) before a flush, whatever little is live.
func flushDue(walBytes uint64, live int64) bool {
	return walBytes > minFlush && int64(walBytes) > 2*live
}

// get returns a copy of the value at key, nil when absent. A closed store
// reports ErrClosed.
func (db *DB) get(key []byte) ([]byte, error) {
	db.engine.RLock()
	defer db.engine.RUnlock()
	if db.engine.closed {
		return nil, ErrClosed
	}
	v, closer, err := db.pdb.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), v...)
	return out, closer.Close()
}

// Exists reports whether dir holds a store (its engine's manifest).
func Exists(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "MANIFEST-*"))
	return len(m) > 0
}
