package disk

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// FileName is the name of the store's file inside its directory.
const FileName = "replayguard.db"

// formatVersion is the file's layout (layout.go), recorded in the meta
// bucket; a file of another version is refused rather than misread.
const formatVersion = 1

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
	// ErrDamaged reports a file that cannot be trusted; Open refuses it.
	ErrDamaged = errors.New("disk: store damaged")
	// ErrFull reports a store at its MaxBytes.
	ErrFull = errors.New("disk: store full")
	// ErrClosed reports a call on a closed store.
	ErrClosed = errors.New("disk: store closed")
	// ErrTimeout reports a call that did not commit within the timeout.
	ErrTimeout = errors.New("disk: store call timed out")
)

// DB is the durable embedded store: one file, holding the nonces and the
// idempotency records of one gateway, in a directory only it uses. Every
// write is committed by one writer goroutine that gathers the writes
// queued meanwhile into one transaction and one fsync (group commit), and
// a call returns only once its write is on disk. Reads that need no write
// (a replayed nonce, a stored response) are answered from the committed
// state without joining a commit. Expired entries are removed in bounded
// batches by a reaper, and their pages are reused, so the file stays at
// the size the live entries need. Safe for concurrent use.
type DB struct {
	bolt *bolt.DB
	path string // directory, absolute
	file string // the database file
	cfg  options

	ops     chan *op
	closing chan struct{}
	stopped chan struct{}
	closed  sync.Once
	release func()

	// full is set when a write was refused for MaxBytes, cleared when
	// the reaper frees room; Ping reports it.
	full atomic.Bool
	// failing holds the error of the last commit of requests' writes
	// when it failed (a full or read-only disk), nil once one succeeds
	// or the reaper frees room; Ping reports it.
	failing atomic.Pointer[error]

	// ix finds entries by key; ledger (the writer's alone) counts what
	// each owner holds.
	ix     *index
	ledger *ledger

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
		timeout: DefaultTimeout, reapInterval: DefaultReapInterval}
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
	db := &DB{path: abs, file: filepath.Join(abs, FileName), cfg: o, release: release,
		ops: make(chan *op, maxBatch), closing: make(chan struct{}), stopped: make(chan struct{})}
	db.nonces, db.records = &Nonces{db: db}, &Records{db: db}
	if err := db.open(); err != nil {
		release()
		return nil, err
	}
	go db.write()
	go db.reap()
	return db, nil
}

// open opens and checks the file. bbolt has no page checksums and reads
// its file through a memory map: a truncated file or garbage pages make it
// fault or panic. Both are caught here, on a goroutine of its own that
// turns faults into panics, and reported as damage. An existing file is
// first walked by verify, so that bbolt is only given a file it can open
// without panicking where no recover reaches.
func (db *DB) open() error {
	type result struct {
		bolt *bolt.DB
		err  error
	}
	done := make(chan result, 1)
	go func() {
		var b *bolt.DB
		defer func() {
			if p := recover(); p != nil {
				if b != nil {
					closeQuietly(b)
				}
				done <- result{err: db.damaged(fmt.Errorf("%v", p))}
			}
		}()
		debug.SetPanicOnFault(true)
		existed := fileHasData(db.file)
		if existed {
			if err := db.verify(); err != nil {
				done <- result{err: err}
				return
			}
		}
		var err error
		b, err = bolt.Open(db.file, 0o600, &bolt.Options{
			Timeout:        db.cfg.lockTimeout,
			NoSync:         !db.cfg.fsync,
			NoFreelistSync: true,
			FreelistType:   bolt.FreelistMapType,
		})
		switch {
		case errors.Is(err, bolterrors.ErrTimeout):
			done <- result{err: db.locked("another process holds it")}
			return
		case err != nil && existed:
			done <- result{err: db.damaged(err)}
			return
		case err != nil:
			done <- result{err: fmt.Errorf("disk: %s: %w", db.file, err)}
			return
		}
		if err := db.check(b, existed); err != nil {
			closeQuietly(b)
			done <- result{err: err}
			return
		}
		db.ix = newIndex()
		err = b.View(func(tx *bolt.Tx) (err error) {
			db.ledger, err = load(tx, db.ix)
			return err
		})
		if err != nil {
			closeQuietly(b)
			done <- result{err: db.damaged(err)}
			return
		}
		done <- result{bolt: b}
	}()
	r := <-done
	if r.err != nil {
		return r.err
	}
	db.bolt = r.bolt
	db.stats.liveBytes.Store(db.ledger.total)
	return nil
}

// check verifies that an opened file is a store of this format and lays
// out a new one. Its pages were walked by verify before bbolt opened it;
// bbolt's Tx.Check is not used: it walks the pages on a goroutine of its
// own, where a page failing bbolt's assertions (to begin with a zeroed
// meta page, which bbolt itself recovers from) panics beyond any recover
// and ends the process.
func (db *DB) check(b *bolt.DB, existed bool) error {
	err := b.View(func(tx *bolt.Tx) error {
		if !existed {
			return nil
		}
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return errors.New("no replayguard metadata: not a replayguard store, or damaged")
		}
		if v := meta.Get(keyFormat); len(v) != 8 || binary.BigEndian.Uint64(v) != formatVersion {
			return fmt.Errorf("format %x, want %d", v, formatVersion)
		}
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("bucket %q missing", name)
			}
		}
		return nil
	})
	if err != nil {
		return db.damaged(err)
	}
	if existed {
		return nil
	}
	err = b.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyFormat, binary.BigEndian.AppendUint64(nil, formatVersion))
	})
	if err != nil {
		return fmt.Errorf("disk: %s: %w", db.file, err)
	}
	return nil
}

func (db *DB) damaged(cause error) error {
	return fmt.Errorf("%w: %s cannot be read (%w); the store refuses to start rather than start empty. "+
		"To recover, stop every process using %s, move that directory aside (keep it for inspection) and start again: "+
		"the new store starts empty, so replays inside the timestamp window and retries of requests it had stored are no longer recognised "+
		"until they expire (the docs' operations guide, \"A damaged disk store\")", ErrDamaged, db.file, cause, db.path)
}

func (db *DB) locked(why string) error {
	return fmt.Errorf("%w: %s is held (%s; waited %s). A disk store serves one gateway process; "+
		"to run several instances, share a Redis (nonce.store and idempotency.store: redis) or PostgreSQL (idempotency.store: postgres) instead",
		ErrLocked, db.path, why, db.cfg.lockTimeout)
}

func closeQuietly(b *bolt.DB) {
	defer func() { _ = recover() }()
	_ = b.Close()
}

// fileHasData reports a regular file with content: a store to check. A
// directory in its place is no store; opening it fails as it is.
func fileHasData(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Size() > 0
}

func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
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

// File returns the path of the store's file.
func (db *DB) File() string { return db.file }

// Close stops the writer and the reaper after the queued writes are
// committed, and closes the file. Calls after Close fail with ErrClosed.
func (db *DB) Close() error {
	var err error
	db.closed.Do(func() {
		close(db.closing)
		<-db.stopped
		err = db.bolt.Close()
		db.release()
	})
	return err
}

// pingBytes is what Ping writes: room for a few requests' entries, which
// a file that can neither grow nor reuse freed pages does not have.
const pingBytes = 64 << 10

// Ping reports the store healthy when it can take more writes: it commits
// pingBytes through the writer, as requests do. A full or read-only disk
// fails it, as does a store at its MaxBytes or whose last commit of
// requests' writes failed (until one succeeds, or the reaper frees room).
func (db *DB) Ping(ctx context.Context) error {
	if db.full.Load() {
		return fmt.Errorf("%w: %d bytes held, max_bytes %d", ErrFull, db.stats.liveBytes.Load(), db.cfg.maxBytes)
	}
	if err := db.failing.Load(); err != nil {
		return fmt.Errorf("writes are failing: %w", *err)
	}
	probe := make([]byte, pingBytes)
	return db.doInternal(ctx, func(w *wtx) error {
		binary.BigEndian.PutUint64(probe, uint64(w.now))
		return w.meta.Put(keyPing, probe)
	})
}

// op is one queued write; apply runs inside the batch's transaction and
// returns the write's own outcome, which never aborts the batch.
type op struct {
	ctx   context.Context
	apply func(w *wtx) error
	err   error
	done  chan struct{}
	// internal marks the store's own writes (Ping's probe, the reaper),
	// which do not tell whether requests' writes commit.
	internal bool
}

// do queues apply and waits until its batch committed. The error is
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
// until Close, then commits what is still queued.
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

// commit applies batch in one transaction and answers every operation.
func (db *DB) commit(batch []*op) {
	start := time.Now()
	now := db.cfg.now().UnixNano()
	var w *wtx
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		w = newWtx(tx, now, db)
		for _, o := range batch {
			if err := o.ctx.Err(); err != nil {
				o.err = err // the caller gave up: write nothing for it
				continue
			}
			o.err = o.apply(w)
		}
		return nil
	})
	db.stats.observeCommit(time.Since(start), len(batch), err)
	requests := false
	for _, o := range batch {
		requests = requests || !o.internal
	}
	if err != nil {
		err = fmt.Errorf("disk: commit: %w", err)
		if requests {
			db.failing.Store(&err)
		}
	} else {
		w.publish()
		if requests {
			db.failing.Store(nil)
		}
	}
	for _, o := range batch {
		if err != nil {
			o.err = err
		}
		close(o.done)
	}
}

// reap is the reaper goroutine: every interval it removes expired
// entries, a bounded batch per commit, until none is left.
func (db *DB) reap() {
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
			if err == nil && n > 0 {
				// Room was freed: requests may fit again.
				if held < db.cfg.maxBytes || db.cfg.maxBytes <= 0 {
					db.full.Store(false)
				}
				db.failing.Store(nil)
			}
			if err != nil || n < reapBatch {
				break
			}
		}
	}
}

// view runs fn on the committed state. A closed store reports ErrClosed.
func (db *DB) view(fn func(tx *bolt.Tx) error) error {
	select {
	case <-db.closing:
		return ErrClosed
	default:
	}
	return db.bolt.View(fn)
}
