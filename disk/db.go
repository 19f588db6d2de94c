package disk

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
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

// formatVersion is the layout of the buckets below, recorded in the meta
// bucket; a file of another version is refused rather than misread.
const formatVersion = 1

// maxBatch bounds how many operations one commit carries.
const maxBatch = 1024

// reapBatch bounds how many expired entries one commit removes, so that
// reclaiming a backlog never stalls the requests sharing its commits.
const reapBatch = 2000

// Buckets of the file.
var (
	// meta: "format" -> version (8), "bytes" -> bytes held (8), "ping".
	bucketMeta = []byte("meta")
	// nonce: scoped nonce -> expiry (8) ‖ owner id (4).
	bucketNonce = []byte("nonce")
	// record: scoped idempotency key -> encoded record.
	bucketRecord = []byte("record")
	// expiry: owner id (4) ‖ expiry (8) ‖ kind (1) ‖ key -> empty. One
	// entry per nonce and record, ordered by owner then expiry, so the
	// reaper and an owner's earliest expiry are found by a seek.
	bucketExpiry = []byte("expiry")
	// owner: owner name -> id (4); ids start at 1, 0 is "nobody".
	bucketOwner = []byte("owner")
	// account: owner id (4) -> bytes held (8).
	bucketAccount = []byte("account")

	allBuckets = [][]byte{bucketMeta, bucketNonce, bucketRecord, bucketExpiry, bucketOwner, bucketAccount}

	keyFormat = []byte("format")
	keyBytes  = []byte("bytes")
	keyPing   = []byte("ping")
)

// Kinds of entry in the expiry bucket.
const (
	kindNonce  = 'n'
	kindRecord = 'r'
)

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
		done <- result{bolt: b}
	}()
	r := <-done
	if r.err != nil {
		return r.err
	}
	db.bolt = r.bolt
	db.stats.liveBytes.Store(db.heldBytes())
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

// verify walks an existing file before bbolt opens it for writing, and
// reports what bbolt could not survive as damage.
//
// Opening a file for writing, bbolt walks every page to rebuild its free
// list and reports what it finds wrong by panicking on a goroutine of its
// own, which no recover reaches: a well-formed page in the wrong place, or
// keys out of order, end the process. A page failing its assertions, or a
// fault, does panic on the opening goroutine, but then leaves the file
// mapped and locked until the process exits. So the file is walked here
// first, with every check bbolt makes of the tree, reading it with ReadAt
// rather than through a memory map, under a shared lock that keeps other
// processes from writing meanwhile (a read-only bbolt handle, which reads
// no more than the meta pages).
func (db *DB) verify() error {
	ro, err := bolt.Open(db.file, 0o600, &bolt.Options{ReadOnly: true, Timeout: db.cfg.lockTimeout})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return db.locked("another process holds it")
	case err != nil:
		return db.damaged(err)
	}
	defer closeQuietly(ro)
	f, err := os.Open(db.file)
	if err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	if err := walkFile(f, fi.Size(), uint64(ro.Info().PageSize)); err != nil {
		return db.damaged(err)
	}
	return nil
}

// bbolt's file layout (go.etcd.io/bbolt/internal/common), in the machine's
// byte order: a page starts with id (8), flags (2), count (2) and overflow
// (4), the number of pages after it that it spans. A meta page then holds
// magic (4), version (4), page size (4), flags (4), the root bucket's page
// (8) and sequence (8), the free list's page (8), the high-water mark (8),
// txid (8) and an FNV-64a checksum (8) of the fields before it. Elements
// follow the header, 16 bytes each: on a branch page pos (4), key size (4)
// and child page (8); on a leaf page flags (4), pos (4), key size (4) and
// value size (4), the key and value at pos bytes from the element. A
// bucket's value is its root page (8) and sequence (8), then, for an
// inline bucket (root 0), its leaf page.
const (
	boltHeader     = 16
	boltElement    = 16
	boltBranch     = 0x01
	boltLeaf       = 0x02
	boltBucketElem = 0x01
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	boltNoFreelist = math.MaxUint64
)

// walkFile checks the B+tree of the file f, of size bytes, as bbolt's
// Tx.Check would: the meta page bbolt would use, every page reached from
// the root being a branch or leaf page below the high-water mark, carrying
// its own id, inside the file and reached once, its elements inside it,
// and keys in order within each page and within the range of the parent's.
func walkFile(f io.ReaderAt, size int64, pageSize uint64) error {
	ne := binary.NativeEndian
	var meta []byte
	var txid uint64
	for i := uint64(0); i < 2; i++ {
		p := make([]byte, boltHeader+64)
		if _, err := f.ReadAt(p, int64(i*pageSize)); err != nil {
			return fmt.Errorf("meta page %d: %w", i, err)
		}
		m := p[boltHeader:]
		sum := fnv.New64a()
		_, _ = sum.Write(m[:56])
		if ne.Uint32(m) != boltMagic || ne.Uint32(m[4:]) != boltVersion || ne.Uint64(m[56:]) != sum.Sum64() {
			continue // bbolt uses the other one
		}
		if meta == nil || ne.Uint64(m[48:]) > txid {
			meta, txid = m, ne.Uint64(m[48:])
		}
	}
	if meta == nil {
		return errors.New("no valid meta page")
	}
	root, freelist, hwm := ne.Uint64(meta[16:]), ne.Uint64(meta[32:]), ne.Uint64(meta[40:])
	switch {
	case uint64(ne.Uint32(meta[8:])) != pageSize:
		return fmt.Errorf("meta page: page size %d, bbolt read %d", ne.Uint32(meta[8:]), pageSize)
	case hwm < 2 || hwm > uint64(size)/pageSize:
		return fmt.Errorf("the file is %d bytes, its pages reach %d: it was truncated", size, hwm*pageSize)
	case freelist != boltNoFreelist:
		// This store never writes its free list (NoFreelistSync).
		return errors.New("a stored free list: not a replayguard store, or damaged")
	}
	w := &walker{f: f, pageSize: pageSize, hwm: hwm, seen: make([]uint64, (hwm+63)/64)}
	_, err := w.tree(root, nil, nil, 0)
	return err
}

// walker walks a bbolt file's pages.
type walker struct {
	f        io.ReaderAt
	pageSize uint64
	hwm      uint64   // pages in use have lower ids
	seen     []uint64 // a bit per page reached
	bufs     [][]byte // a page buffer per depth of the walk
}

// tree checks the subtree of page id, its keys in [min, max) (nil: no
// bound), and returns its largest key, as bbolt's check does.
func (w *walker) tree(id uint64, min, max []byte, depth int) ([]byte, error) {
	ne := binary.NativeEndian
	if id < 2 || id >= w.hwm {
		return nil, fmt.Errorf("page %d: out of bounds (high-water mark %d)", id, w.hwm)
	}
	var h [boltHeader]byte
	if _, err := w.f.ReadAt(h[:], int64(id*w.pageSize)); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	overflow := uint64(ne.Uint32(h[12:]))
	switch flags := ne.Uint16(h[8:]); {
	case ne.Uint64(h[:]) != id:
		return nil, fmt.Errorf("page %d: identifies as page %d", id, ne.Uint64(h[:]))
	case flags != boltBranch && flags != boltLeaf:
		return nil, fmt.Errorf("page %d: flags %#x, not a branch or leaf page", id, flags)
	case overflow >= w.hwm-id:
		return nil, fmt.Errorf("page %d: %d overflow pages pass the high-water mark %d", id, overflow, w.hwm)
	}
	for i := id; i <= id+overflow; i++ {
		if w.seen[i/64]&(1<<(i%64)) != 0 {
			return nil, fmt.Errorf("page %d: reached twice", i)
		}
		w.seen[i/64] |= 1 << (i % 64)
	}
	for len(w.bufs) <= depth {
		w.bufs = append(w.bufs, nil)
	}
	n := (overflow + 1) * w.pageSize
	if uint64(cap(w.bufs[depth])) < n {
		w.bufs[depth] = make([]byte, n)
	}
	p := w.bufs[depth][:n]
	if _, err := w.f.ReadAt(p, int64(id*w.pageSize)); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	return w.elements(id, p, min, max, depth)
}

// elements checks the elements of page p (id 0: an inline bucket's) and
// walks the subtrees and buckets they refer to.
func (w *walker) elements(id uint64, p, min, max []byte, depth int) ([]byte, error) {
	ne := binary.NativeEndian
	branch, count := ne.Uint16(p[8:]) == boltBranch, int(ne.Uint16(p[10:]))
	switch {
	case boltHeader+count*boltElement > len(p):
		return nil, fmt.Errorf("page %d: %d elements do not fit", id, count)
	case branch && count == 0:
		// bbolt never writes one; its cursors would read past the header.
		return nil, fmt.Errorf("page %d: a branch page without elements", id)
	}
	keys, values := make([][]byte, count), make([][]byte, count)
	for i := range keys {
		e := uint64(boltHeader + i*boltElement)
		pos, klen, vlen := uint64(ne.Uint32(p[e:])), uint64(ne.Uint32(p[e+4:])), uint64(0)
		if !branch {
			pos, klen, vlen = uint64(ne.Uint32(p[e+4:])), uint64(ne.Uint32(p[e+8:])), uint64(ne.Uint32(p[e+12:]))
		}
		if e+pos+klen+vlen > uint64(len(p)) {
			return nil, fmt.Errorf("page %d: element %d reaches past the page", id, i)
		}
		keys[i], values[i] = p[e+pos:e+pos+klen], p[e+pos+klen:e+pos+klen+vlen]
	}
	var largest []byte // of the last subtree walked
	prev := min
	for i, key := range keys {
		if i == 0 && prev != nil && bytes.Compare(prev, key) > 0 ||
			i > 0 && bytes.Compare(prev, key) >= 0 ||
			max != nil && bytes.Compare(key, max) >= 0 {
			return nil, fmt.Errorf("page %d: key %d out of order", id, i)
		}
		e := boltHeader + i*boltElement
		switch {
		case branch:
			next := max
			if i+1 < count {
				next = keys[i+1]
			}
			var err error
			if largest, err = w.tree(ne.Uint64(p[e+8:]), key, next, depth+1); err != nil {
				return nil, err
			}
			prev = largest
		case ne.Uint32(p[e:])&boltBucketElem != 0:
			if err := w.bucket(id, values[i], depth+1); err != nil {
				return nil, err
			}
			prev = key
		default:
			prev = key
		}
	}
	if !branch && count > 0 {
		return bytes.Clone(keys[count-1]), nil
	}
	return largest, nil
}

// bucket checks the bucket whose value v is on page id.
func (w *walker) bucket(id uint64, v []byte, depth int) error {
	if len(v) < 16 {
		return fmt.Errorf("page %d: a bucket of %d bytes", id, len(v))
	}
	if root := binary.NativeEndian.Uint64(v); root != 0 {
		_, err := w.tree(root, nil, nil, depth)
		return err
	}
	inline := v[16:]
	if len(inline) < boltHeader || binary.NativeEndian.Uint16(inline[8:]) != boltLeaf {
		return fmt.Errorf("page %d: an inline bucket without its leaf page", id)
	}
	_, err := w.elements(0, inline, nil, nil, depth)
	return err
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
	var held int64
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		w := newWtx(tx, now, db)
		for _, o := range batch {
			if err := o.ctx.Err(); err != nil {
				o.err = err // the caller gave up: write nothing for it
				continue
			}
			o.err = o.apply(w)
		}
		held = w.held()
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
		db.stats.liveBytes.Store(held)
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

// heldBytes reads the bytes held from the committed state.
func (db *DB) heldBytes() int64 {
	var n int64
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		n = getInt(tx.Bucket(bucketMeta).Get(keyBytes))
		return nil
	})
	return n
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

// wtx is the writer's view of one batch's transaction.
type wtx struct {
	tx                                         *bolt.Tx
	db                                         *DB
	now                                        int64
	meta, nonce, record, expiry, owner, accnts *bolt.Bucket
	bytes                                      int64
}

func newWtx(tx *bolt.Tx, now int64, db *DB) *wtx {
	w := &wtx{tx: tx, db: db, now: now, meta: tx.Bucket(bucketMeta), nonce: tx.Bucket(bucketNonce),
		record: tx.Bucket(bucketRecord), expiry: tx.Bucket(bucketExpiry), owner: tx.Bucket(bucketOwner),
		accnts: tx.Bucket(bucketAccount)}
	w.bytes = getInt(w.meta.Get(keyBytes))
	return w
}

// held returns the bytes held, recording them in the meta bucket.
func (w *wtx) held() int64 {
	_ = w.meta.Put(keyBytes, putInt(w.bytes))
	return w.bytes
}

// ownerID returns the id of owner name, creating it when create is set;
// 0 for no owner (or none recorded).
func (w *wtx) ownerID(name string, create bool) (uint32, error) {
	if name == "" || w.db.cfg.keyShare <= 0 {
		return 0, nil
	}
	if v := w.owner.Get([]byte(name)); len(v) == 4 {
		return binary.BigEndian.Uint32(v), nil
	}
	if !create {
		return 0, nil
	}
	seq, err := w.owner.NextSequence()
	if err != nil {
		return 0, err
	}
	if seq > math.MaxUint32 {
		return 0, errors.New("disk: owner ids exhausted")
	}
	id := uint32(seq)
	return id, w.owner.Put([]byte(name), binary.BigEndian.AppendUint32(nil, id))
}

// account returns the bytes owner id holds.
func (w *wtx) account(id uint32) int64 {
	return getInt(w.accnts.Get(binary.BigEndian.AppendUint32(nil, id)))
}

// charge adds n (negative to credit) to owner id and to the total.
func (w *wtx) charge(id uint32, n int64) error {
	w.bytes += n
	if id == 0 {
		return nil
	}
	k := binary.BigEndian.AppendUint32(nil, id)
	return w.accnts.Put(k, putInt(getInt(w.accnts.Get(k))+n))
}

// room checks that owner id may take n more bytes: ErrFull when the store
// would pass MaxBytes, a *quota when the owner would pass its share (after
// reclaiming its own expired entries).
func (w *wtx) room(id uint32, n int64) error {
	if id != 0 && w.account(id)+n > w.db.cfg.keyShare {
		w.reapOwner(id, reapBatch)
		if w.account(id)+n > w.db.cfg.keyShare {
			return &quota{retryAfter: w.earliest(id)}
		}
	}
	if max := w.db.cfg.maxBytes; max > 0 && w.bytes+n > max {
		w.reapAll(reapBatch)
		if w.bytes+n > max {
			w.db.full.Store(true)
			return fmt.Errorf("%w (max_bytes %d)", ErrFull, max)
		}
	}
	return nil
}

// quota is an owner over its share; the callers turn it into their
// package's QuotaError.
type quota struct{ retryAfter time.Duration }

func (q *quota) Error() string { return "disk: quota exceeded" }

// earliest returns how long until owner id's earliest live entry expires.
func (w *wtx) earliest(id uint32) time.Duration {
	c := w.expiry.Cursor()
	prefix := binary.BigEndian.AppendUint32(nil, id)
	for k, _ := c.Seek(prefix); k != nil && len(k) >= 13 && binary.BigEndian.Uint32(k) == id; k, _ = c.Next() {
		if exp := decodeTime(k[4:12]); exp > w.now {
			return time.Duration(exp - w.now)
		}
	}
	return time.Second
}

// index records that key of kind expires at exp, charged to owner id.
func (w *wtx) index(id uint32, exp int64, kind byte, key []byte) error {
	return w.expiry.Put(expiryKey(id, exp, kind, key), nil)
}

func (w *wtx) unindex(id uint32, exp int64, kind byte, key []byte) error {
	return w.expiry.Delete(expiryKey(id, exp, kind, key))
}

// reapAll removes up to limit expired entries of every owner.
func (w *wtx) reapAll(limit int) int {
	n := w.reapOwner(0, limit)
	c := w.accnts.Cursor()
	var ids []uint32
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if len(k) == 4 {
			ids = append(ids, binary.BigEndian.Uint32(k))
		}
	}
	for _, id := range ids {
		if n >= limit {
			break
		}
		n += w.reapOwner(id, limit-n)
	}
	return n
}

// reapOwner removes up to limit expired entries of owner id.
func (w *wtx) reapOwner(id uint32, limit int) int {
	prefix := binary.BigEndian.AppendUint32(nil, id)
	var expired [][]byte
	c := w.expiry.Cursor()
	for k, _ := c.Seek(prefix); k != nil && len(expired) < limit; k, _ = c.Next() {
		if len(k) < 13 || binary.BigEndian.Uint32(k) != id || decodeTime(k[4:12]) > w.now {
			break
		}
		expired = append(expired, append([]byte(nil), k...))
	}
	for _, k := range expired {
		exp, kind, key := decodeTime(k[4:12]), k[12], k[13:]
		_ = w.expiry.Delete(k)
		switch kind {
		case kindNonce:
			if v := w.nonce.Get(key); len(v) == nonceValueLen && decodeTime(v[:8]) == exp {
				_ = w.nonce.Delete(key)
				_ = w.charge(id, -nonceCost(key))
			}
		case kindRecord:
			if v := w.record.Get(key); v != nil {
				if r, err := decodeRecord(v); err == nil && r.expires == exp {
					_ = w.record.Delete(key)
					_ = w.charge(id, -recordCost(key, len(v)))
				}
			}
		}
	}
	w.db.stats.reclaimed.Add(uint64(len(expired)))
	return len(expired)
}

// Cost of entries, in bytes, as counted against MaxBytes and shares:
// the key and value in their bucket, the expiry entry, and the B+tree's
// per-entry overhead with pages kept about half full.
const entryOverhead = 128

func nonceCost(key []byte) int64 {
	return entryOverhead + 2*int64(len(key)) + nonceValueLen + 13
}

func recordCost(key []byte, valueLen int) int64 {
	return entryOverhead + 2*int64(len(key)) + int64(valueLen) + 13
}

func expiryKey(id uint32, exp int64, kind byte, key []byte) []byte {
	b := make([]byte, 0, 13+len(key))
	b = binary.BigEndian.AppendUint32(b, id)
	b = appendTime(b, exp)
	b = append(b, kind)
	return append(b, key...)
}

// appendTime writes unix nanoseconds so that byte order is time order
// (the sign bit flipped).
func appendTime(b []byte, t int64) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(t)^(1<<63))
}

func decodeTime(b []byte) int64 { return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)) }

func getInt(b []byte) int64 {
	if len(b) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(b))
}

func putInt(n int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(n)) }

// after returns now + d, saturating instead of wrapping.
func after(now int64, d time.Duration) int64 {
	if d > 0 && now > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	return now + int64(d)
}
