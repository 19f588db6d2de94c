package disk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/replayguard/replayguard/idempotency"
)

// The store's layout in the engine's key space. Every nonce and
// idempotency record is one entry, keyed by when it expires:
//
//	'e' ‖ owner id (4) ‖ expiry (8, unix ns, sign bit flipped) ‖ kind (1) ‖ key
//
// with an empty value for a nonce and the encoded record for a record.
// Ordered by owner, then expiry, the reaper and an owner's earliest expiry
// are a seek away, and removed entries lie before where the reaper seeks
// next. Entries are found by key through an index the store keeps in
// memory (a digest of kind and key → owner and expiry), rebuilt at Open.
// Owner names map to ids under 'o' ‖ name; 'm' ‖ name holds the format
// version and Ping's probe.
const (
	prefixEntry = 'e'
	prefixOwner = 'o'
	prefixMeta  = 'm'
)

var (
	keyFormat = []byte{prefixMeta, 'f', 'o', 'r', 'm', 'a', 't'}
	keyPing   = []byte{prefixMeta, 'p', 'i', 'n', 'g'}
)

// Kinds of entry.
const (
	kindNonce  = 'n'
	kindRecord = 'r'
)

// entryFixed is the length of an entry key before the key proper.
const entryFixed = 1 + 4 + 8 + 1

// Cost of entries, in bytes, as counted against MaxBytes and shares: the
// entry's key and value and the engine's per-entry overhead in its log
// and tables (sequence number and kind, lengths, the tables' index and
// filter blocks).
const entryOverhead = 24

func entryCost(keyLen, valueLen int) int64 {
	return entryOverhead + entryFixed + int64(keyLen) + int64(valueLen)
}

func entryKey(owner uint32, exp int64, kind byte, key []byte) []byte {
	b := make([]byte, 0, entryFixed+len(key))
	b = append(b, prefixEntry)
	b = binary.BigEndian.AppendUint32(b, owner)
	b = appendTime(b, exp)
	b = append(b, kind)
	return append(b, key...)
}

// parseEntryKey splits an entry key; ok is false for a malformed one.
func parseEntryKey(k []byte) (owner uint32, exp int64, kind byte, key []byte, ok bool) {
	if len(k) <= entryFixed || k[0] != prefixEntry {
		return 0, 0, 0, nil, false
	}
	return binary.BigEndian.Uint32(k[1:5]), decodeTime(k[5:13]), k[13], k[entryFixed:], true
}

// ownerPrefix is where owner id's entries start.
func ownerPrefix(id uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{prefixEntry}, id)
}

// ownerKey is where owner name's id is kept.
func ownerKey(name string) []byte { return append([]byte{prefixOwner}, name...) }

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

// load reads the owners and every entry of the store into ix and the
// ledger, which it returns. Reading every entry checks every block it
// reads against its checksum.
func load(r pebble.Reader, ix *index) (*ledger, error) {
	lg := &ledger{accounts: map[uint32]int64{}, owners: map[string]uint32{}, nextID: 1}
	err := scan(r, []byte{prefixOwner}, []byte{prefixOwner + 1}, func(k, v []byte) error {
		if len(v) != 4 {
			return fmt.Errorf("owner %q: an id of %d bytes", k[1:], len(v))
		}
		id := binary.BigEndian.Uint32(v)
		lg.owners[string(k[1:])] = id
		if id >= lg.nextID {
			lg.nextID = id + 1
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = scan(r, []byte{prefixEntry}, []byte{prefixEntry + 1}, func(k, v []byte) error {
		owner, exp, kind, key, ok := parseEntryKey(k)
		if !ok || (kind != kindNonce && kind != kindRecord) {
			return fmt.Errorf("a malformed entry key %x", k)
		}
		d := ix.digest(kind, key)
		if old, dup := ix.get(d); dup {
			// Never written so; should it be there, the later expiry
			// holds and the other is left to the reaper.
			if old.exp >= exp {
				return nil
			}
			lg.add(old.owner, -entryCost(len(key), int(old.valueLen)))
		}
		ix.set(d, loc{exp: exp, owner: owner, valueLen: uint32(len(v))}, true)
		lg.add(owner, entryCost(len(key), len(v)))
		return nil
	})
	return lg, err
}

// add charges n bytes (negative: credits) to owner id's account and the
// total.
func (lg *ledger) add(id uint32, n int64) {
	lg.total += n
	if id != 0 {
		lg.accounts[id] += n
		if lg.accounts[id] == 0 {
			delete(lg.accounts, id)
		}
	}
}

// scan calls fn with every key and value in [lower, upper).
func scan(r pebble.Reader, lower, upper []byte, fn func(k, v []byte) error) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return err
		}
		if err := fn(it.Key(), v); err != nil {
			_ = it.Close()
			return err
		}
	}
	if err := it.Error(); err != nil {
		_ = it.Close()
		return err
	}
	return it.Close()
}

// wtx is the writer's view of one group commit: its batch, and the
// changes to the index and the ledger it makes, published once the batch
// is synced.
type wtx struct {
	db  *DB
	now int64
	b   *pebble.Batch

	pending   map[digest]*loc // nil: removed
	values    map[digest][]byte
	delta     map[uint32]int64
	bytes     int64 // the total, pending changes included
	newOwners map[string]uint32
	nextID    uint32
	reclaimed int
	// reapTo and reapFrom move the reaper's positions (DB.reapFrom):
	// reapTo past the entries this batch reaped, reapFrom back before
	// entries it put already expired.
	reapTo, reapFrom map[uint32]int64
}

func newWtx(b *pebble.Batch, now int64, db *DB) *wtx {
	return &wtx{db: db, now: now, b: b, pending: map[digest]*loc{}, delta: map[uint32]int64{},
		bytes: db.ledger.total, nextID: db.ledger.nextID}
}

// publish makes the batch's changes visible to the next batches and to
// readers, once it is synced.
func (w *wtx) publish() {
	lg := w.db.ledger
	for d, l := range w.pending {
		if l == nil {
			w.db.ix.set(d, loc{}, false)
			delete(w.db.held, d)
			continue
		}
		w.db.ix.set(d, *l, true)
		if v := w.values[d]; len(v) > 1 && v[1] == byte(idempotency.StateInProgress) {
			w.db.held[d] = v
		} else {
			delete(w.db.held, d)
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
	for id, exp := range w.reapTo {
		w.db.reapFrom[id] = exp
	}
	for id, exp := range w.reapFrom {
		if from, ok := w.db.reapFrom[id]; ok && exp < from {
			w.db.reapFrom[id] = exp
		}
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

// value returns the value of the entry at l as this batch sees it; nil
// when it is absent.
func (w *wtx) value(d digest, kind byte, key []byte, l loc) ([]byte, error) {
	if v, ok := w.values[d]; ok {
		return v, nil
	}
	if v, ok := w.db.held[d]; ok {
		return v, nil
	}
	return w.db.get(entryKey(l.owner, l.exp, kind, key))
}

// put writes an entry and charges its cost to its owner.
func (w *wtx) put(d digest, kind byte, key []byte, l loc, value []byte) error {
	if err := w.b.Set(entryKey(l.owner, l.exp, kind, key), value, nil); err != nil {
		return err
	}
	l.valueLen = uint32(len(value))
	w.pending[d] = &l
	if kind == kindRecord {
		if w.values == nil {
			w.values = map[digest][]byte{}
		}
		w.values[d] = value
	}
	if l.exp <= w.now {
		if w.reapFrom == nil {
			w.reapFrom = map[uint32]int64{}
		}
		if from, ok := w.reapFrom[l.owner]; !ok || l.exp < from {
			w.reapFrom[l.owner] = l.exp
		}
	}
	w.charge(l.owner, entryCost(len(key), len(value)))
	return nil
}

// drop removes the entry at l and credits its cost.
func (w *wtx) drop(d digest, kind byte, key []byte, l loc) error {
	if err := w.b.Delete(entryKey(l.owner, l.exp, kind, key), nil); err != nil {
		return err
	}
	w.pending[d] = nil
	delete(w.values, d)
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
	if err := w.b.Set(ownerKey(name), binary.BigEndian.AppendUint32(nil, id), nil); err != nil {
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
	var found int64
	err := w.entries(id, math.MaxInt64, func(k []byte) bool {
		if _, exp, _, _, ok := parseEntryKey(k); ok && exp > w.now {
			found = exp
			return false
		}
		return true
	})
	if err != nil || found == 0 {
		return time.Second
	}
	return time.Duration(found - w.now)
}

// entries calls fn with the keys of owner id's entries in the engine,
// from where the reaper left off, in order of expiry, up to those
// expiring at until, while fn returns true. The batch's own writes are
// not among them.
func (w *wtx) entries(id uint32, until int64, fn func(k []byte) bool) error {
	prefix := ownerPrefix(id)
	lower := prefix
	if from, ok := w.db.reapFrom[id]; ok {
		lower = appendTime(prefix, from)
	}
	upper := appendTime(ownerPrefix(id), until)
	if until == math.MaxInt64 {
		upper = ownerPrefix(id + 1)
		if id == math.MaxUint32 {
			upper = []byte{prefixEntry + 1}
		}
	}
	it, err := w.db.pdb.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	for ok := it.First(); ok && fn(it.Key()); ok = it.Next() {
	}
	if err := it.Error(); err != nil {
		_ = it.Close()
		return err
	}
	return it.Close()
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
// ones of its run from where the last reaping stopped.
func (w *wtx) reapOwner(id uint32, limit int) int {
	var expired [][]byte
	err := w.entries(id, w.now+1, func(k []byte) bool {
		expired = append(expired, append([]byte(nil), k...))
		return len(expired) < limit
	})
	if err != nil {
		return 0
	}
	n := 0
	for _, k := range expired {
		owner, exp, kind, key, _ := parseEntryKey(k)
		d := w.db.ix.digest(kind, key)
		if l, ok := w.pending[d]; ok && (l == nil || l.exp != exp || l.owner != owner) {
			continue // this batch removed or replaced it already
		}
		n++
		l, ok := w.find(d)
		if !ok || l.exp != exp || l.owner != owner {
			// Not the indexed entry (never written so): remove it alone.
			_ = w.b.Delete(k, nil)
			continue
		}
		_ = w.drop(d, kind, key, l)
	}
	if len(expired) > 0 {
		_, last, _, _, _ := parseEntryKey(expired[len(expired)-1])
		w.reapedTo(id, last)
	}
	w.reclaimed += n
	return n
}

// reapedTo records that owner id's entries expiring before exp are gone,
// so that the next reaping seeks past their tombstones.
func (w *wtx) reapedTo(id uint32, exp int64) {
	if w.reapTo == nil {
		w.reapTo = map[uint32]int64{}
	}
	w.reapTo[id] = exp
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
