package disk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The file's layout. Every nonce and idempotency record is one entry of
// the bucket "entries", keyed by when it expires:
//
//	owner id (4) ‖ expiry (8, unix ns, sign bit flipped) ‖ kind (1) ‖ key
//
// with an empty value for a nonce and the encoded record for a record.
// Ordered by owner, then expiry, new entries land at the ends of a few
// runs (nonces expire a window after their signed time, claims a lease
// from now, completed records a TTL from now), so a commit rewrites a
// few pages however many entries it carries, and the reaper and an
// owner's earliest expiry are a seek away. Entries are found by key
// through an index the store keeps in memory (a digest of kind and key →
// owner and expiry), rebuilt from the file at Open. Owner names map to ids
// in the bucket "owners"; "meta" holds the format version.
var (
	bucketMeta    = []byte("meta")
	bucketEntries = []byte("entries")
	bucketOwners  = []byte("owners")

	allBuckets = [][]byte{bucketMeta, bucketEntries, bucketOwners}

	keyFormat = []byte("format")
	keyPing   = []byte("ping")
)

// Kinds of entry.
const (
	kindNonce  = 'n'
	kindRecord = 'r'
)

// entryFixed is the length of an entry key before the key proper.
const entryFixed = 4 + 8 + 1

// fillPercent packs the pages of the append-mostly entries bucket.
const fillPercent = 0.9

// Cost of entries, in bytes, as counted against MaxBytes and shares: the
// entry's key and value and bbolt's per-entry overhead, with pages about
// 90% full.
const entryOverhead = 40

func entryCost(keyLen, valueLen int) int64 {
	return entryOverhead + entryFixed + int64(keyLen) + int64(valueLen)
}

func entryKey(owner uint32, exp int64, kind byte, key []byte) []byte {
	b := make([]byte, 0, entryFixed+len(key))
	b = binary.BigEndian.AppendUint32(b, owner)
	b = appendTime(b, exp)
	b = append(b, kind)
	return append(b, key...)
}

// parseEntryKey splits an entry key; ok is false for a malformed one.
func parseEntryKey(k []byte) (owner uint32, exp int64, kind byte, key []byte, ok bool) {
	if len(k) <= entryFixed {
		return 0, 0, 0, nil, false
	}
	return binary.BigEndian.Uint32(k), decodeTime(k[4:12]), k[12], k[entryFixed:], true
}

// loc is where the index finds an entry: its owner and expiry (with its
// kind and key, the entry's key in the file) and the length of its value.
type loc struct {
	exp      int64
	owner    uint32
	valueLen uint32
}

// digest identifies kind and key in the index: 128 bits of two keyed
// hashes under per-process seeds, so distinct keys collide with
// probability 2^-128.
type digest [2]uint64

const indexShards = 64

// index is the in-memory map from digest to loc. Only the writer changes
// it, after a commit succeeded; readers take a shard's read lock.
type index struct {
	seed1, seed2 maphash.Seed
	shards       [indexShards]struct {
		mu sync.RWMutex
		m  map[digest]loc
		_  [40]byte // keep shards on separate cache lines
	}
}

func newIndex() *index {
	ix := &index{seed1: maphash.MakeSeed(), seed2: maphash.MakeSeed()}
	for i := range ix.shards {
		ix.shards[i].m = make(map[digest]loc)
	}
	return ix
}

func (ix *index) digest(kind byte, key []byte) digest {
	var h1, h2 maphash.Hash
	h1.SetSeed(ix.seed1)
	h2.SetSeed(ix.seed2)
	_ = h1.WriteByte(kind)
	_ = h2.WriteByte(kind)
	_, _ = h1.Write(key)
	_, _ = h2.Write(key)
	return digest{h1.Sum64(), h2.Sum64()}
}

func (ix *index) get(d digest) (loc, bool) {
	sh := &ix.shards[d[0]%indexShards]
	sh.mu.RLock()
	l, ok := sh.m[d]
	sh.mu.RUnlock()
	return l, ok
}

func (ix *index) set(d digest, l loc, present bool) {
	sh := &ix.shards[d[0]%indexShards]
	sh.mu.Lock()
	if present {
		sh.m[d] = l
	} else {
		delete(sh.m, d)
	}
	sh.mu.Unlock()
}

// ledger is what the writer alone keeps: the bytes each owner holds, the
// total, and the owners' ids by name.
type ledger struct {
	total    int64
	accounts map[uint32]int64
	owners   map[string]uint32
	nextID   uint32
}

// load reads the owners and every entry of the file into ix and the
// ledger, which it returns.
func load(tx *bolt.Tx, ix *index) (*ledger, error) {
	lg := &ledger{accounts: map[uint32]int64{}, owners: map[string]uint32{}, nextID: 1}
	err := tx.Bucket(bucketOwners).ForEach(func(k, v []byte) error {
		if len(v) != 4 {
			return fmt.Errorf("owner %q: an id of %d bytes", k, len(v))
		}
		id := binary.BigEndian.Uint32(v)
		lg.owners[string(k)] = id
		if id >= lg.nextID {
			lg.nextID = id + 1
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = tx.Bucket(bucketEntries).ForEach(func(k, v []byte) error {
		owner, exp, kind, key, ok := parseEntryKey(k)
		if !ok || (kind != kindNonce && kind != kindRecord) {
			return fmt.Errorf("a malformed entry key %x", k)
		}
		d := ix.digest(kind, key)
		if old, dup := ix.get(d); dup {
			// Never written so; should it be there, the later expiry
			// holds and the other is left to expire.
			if old.exp >= exp {
				return nil
			}
		}
		ix.set(d, loc{exp: exp, owner: owner, valueLen: uint32(len(v))}, true)
		cost := entryCost(len(key), len(v))
		lg.total += cost
		if owner != 0 {
			lg.accounts[owner] += cost
		}
		return nil
	})
	return lg, err
}

// wtx is the writer's view of one batch's transaction: the bucket, and
// the changes to the index and the ledger that take effect when the
// commit succeeds.
type wtx struct {
	db      *DB
	now     int64
	tx      *bolt.Tx
	entries *bolt.Bucket
	meta    *bolt.Bucket

	pending   map[digest]*loc // nil: removed
	delta     map[uint32]int64
	bytes     int64 // the total, pending changes included
	newOwners map[string]uint32
	nextID    uint32
	reclaimed int
}

func newWtx(tx *bolt.Tx, now int64, db *DB) *wtx {
	w := &wtx{db: db, now: now, tx: tx, entries: tx.Bucket(bucketEntries), meta: tx.Bucket(bucketMeta),
		pending: map[digest]*loc{}, delta: map[uint32]int64{}, bytes: db.ledger.total, nextID: db.ledger.nextID}
	w.entries.FillPercent = fillPercent
	return w
}

// publish makes the batch's changes visible, once it is on disk.
func (w *wtx) publish() {
	lg := w.db.ledger
	for d, l := range w.pending {
		if l == nil {
			w.db.ix.set(d, loc{}, false)
		} else {
			w.db.ix.set(d, *l, true)
		}
	}
	for id, n := range w.delta {
		lg.accounts[id] += n
		if lg.accounts[id] == 0 {
			delete(lg.accounts, id)
		}
	}
	for name, id := range w.newOwners {
		lg.owners[name] = id
	}
	lg.total, lg.nextID = w.bytes, w.nextID
	w.db.stats.liveBytes.Store(lg.total)
	w.db.stats.reclaimed.Add(uint64(w.reclaimed))
}

// find returns the entry of kind and key as this batch sees it.
func (w *wtx) find(d digest) (loc, bool) {
	if l, ok := w.pending[d]; ok {
		if l == nil {
			return loc{}, false
		}
		return *l, true
	}
	return w.db.ix.get(d)
}

// put writes an entry and charges its cost to its owner.
func (w *wtx) put(d digest, kind byte, key []byte, l loc, value []byte) error {
	if err := w.entries.Put(entryKey(l.owner, l.exp, kind, key), value); err != nil {
		return err
	}
	l.valueLen = uint32(len(value))
	w.pending[d] = &l
	w.charge(l.owner, entryCost(len(key), len(value)))
	return nil
}

// drop removes the entry at l and credits its cost.
func (w *wtx) drop(d digest, kind byte, key []byte, l loc) error {
	if err := w.entries.Delete(entryKey(l.owner, l.exp, kind, key)); err != nil {
		return err
	}
	w.pending[d] = nil
	w.charge(l.owner, -entryCost(len(key), int(l.valueLen)))
	return nil
}

func (w *wtx) charge(id uint32, n int64) {
	w.bytes += n
	if id != 0 {
		w.delta[id] += n
	}
}

// account returns the bytes owner id holds, pending changes included.
func (w *wtx) account(id uint32) int64 {
	return w.db.ledger.accounts[id] + w.delta[id]
}

// ownerID returns the id of owner name, allocating one for a new name;
// 0 for no owner, or when shares are off.
func (w *wtx) ownerID(name string) (uint32, error) {
	if name == "" || w.db.cfg.keyShare <= 0 {
		return 0, nil
	}
	if id, ok := w.db.ledger.owners[name]; ok {
		return id, nil
	}
	if id, ok := w.newOwners[name]; ok {
		return id, nil
	}
	if w.nextID == math.MaxUint32 {
		return 0, errors.New("disk: owner ids exhausted")
	}
	id := w.nextID
	if err := w.tx.Bucket(bucketOwners).Put([]byte(name), binary.BigEndian.AppendUint32(nil, id)); err != nil {
		return 0, err
	}
	if w.newOwners == nil {
		w.newOwners = map[string]uint32{}
	}
	w.newOwners[name] = id
	w.nextID++
	return id, nil
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
	c := w.entries.Cursor()
	prefix := binary.BigEndian.AppendUint32(nil, id)
	for k, _ := c.Seek(prefix); k != nil; k, _ = c.Next() {
		owner, exp, _, _, ok := parseEntryKey(k)
		if !ok || owner != id {
			break
		}
		if exp > w.now {
			return time.Duration(exp - w.now)
		}
	}
	return time.Second
}

// reapAll removes up to limit expired entries of every owner.
func (w *wtx) reapAll(limit int) int {
	n := w.reapOwner(0, limit)
	ids := make([]uint32, 0, len(w.db.ledger.accounts)+len(w.delta))
	for id := range w.db.ledger.accounts {
		ids = append(ids, id)
	}
	for id := range w.delta {
		if _, ok := w.db.ledger.accounts[id]; !ok {
			ids = append(ids, id)
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

// reapOwner removes up to limit expired entries of owner id: the first
// ones of its run.
func (w *wtx) reapOwner(id uint32, limit int) int {
	prefix := binary.BigEndian.AppendUint32(nil, id)
	var expired [][]byte
	c := w.entries.Cursor()
	for k, _ := c.Seek(prefix); k != nil && len(expired) < limit; k, _ = c.Next() {
		owner, exp, _, _, ok := parseEntryKey(k)
		if !ok || owner != id || exp > w.now {
			break
		}
		expired = append(expired, append([]byte(nil), k...))
	}
	for _, k := range expired {
		owner, exp, kind, key, _ := parseEntryKey(k)
		d := w.db.ix.digest(kind, key)
		l, ok := w.find(d)
		if !ok || l.exp != exp || l.owner != owner {
			// Not the indexed entry (never written so): remove it alone.
			_ = w.entries.Delete(k)
			continue
		}
		_ = w.drop(d, kind, key, l)
	}
	w.reclaimed += len(expired)
	return len(expired)
}

// appendTime writes unix nanoseconds so that byte order is time order
// (the sign bit flipped).
func appendTime(b []byte, t int64) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(t)^(1<<63))
}

func decodeTime(b []byte) int64 { return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)) }

// after returns now + d, saturating instead of wrapping.
func after(now int64, d time.Duration) int64 {
	if d > 0 && now > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	return now + int64(d)
}
