package nonce

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultShards is the number of independently locked shards of Memory.
const DefaultShards = 64

// Memory is the embedded exact store: one record per scoped key. Records
// are reclaimed as they expire, so memory follows the number of keys inside
// the window, never the total ever seen. It is safe for concurrent use and
// sharded so that Adds do not serialise on one lock.
//
// A record is keyed by a 128-bit keyed digest of the scoped key (two
// maphash sums under random per-process seeds), so the store holds no
// pointers for the garbage collector to scan and needs no allocation per
// key; two distinct keys collide with probability 2^-128, far below one in
// a billion even with billions of live records.
type Memory struct {
	shards     []memoryShard
	seed       maphash.Seed
	seed2      maphash.Seed
	now        func() time.Time
	maxEntries int64
	count      atomic.Int64

	// keyShare bounds the live records of one owner (Entry.Owner); 0: no
	// bound beyond maxEntries. Owners are interned: ownerIDs names them,
	// owners[id] counts their records (owners[0] is "no owner").
	keyShare int64
	ownersMu sync.RWMutex
	ownerIDs map[string]uint32
	owners   []*memOwner
}

// memOwner is one owner's account.
type memOwner struct {
	count atomic.Int64
}

var _ Store = (*Memory)(nil)

type memoryShard struct {
	mu      sync.Mutex
	records map[digest]int64 // scoped key digest -> expiry, unix nanoseconds
	// peak is the most records the map has held since it was made: a map
	// never gives back its slots, so once a quarter of them are empty the
	// map is made anew.
	peak   int
	expiry expiryHeap
	// owned holds, per owner id, the expiries of the owner's records in
	// this shard, so that an owner's earliest expiry is found without a
	// scan. Only records with an owner under a key share are in it.
	owned map[uint32]*ownedExpiry
	_     [24]byte // keep shards on separate cache lines
}

// ownedExpiry is one owner's records of a shard: their expiries, earliest
// first. The records themselves are dropped through the shard's expiry
// heap, which names their owner.
type ownedExpiry struct {
	o      *memOwner
	expiry timeHeap
}

// MemoryEntryBytes is the most heap one record of Memory holds while the
// store fills, key share included, measured with runtime/metrics'
// /gc/heap/live:bytes (see TestMemoryEntryBytesBoundsTheHeap): its slot in
// the shard's map, a 24-byte slot of a Swiss table between 7/16 and 7/8
// full (27 to 59 bytes an entry); its 32-byte expiry item, in a slice up to
// a quarter longer than its items; under a key share, its 8-byte expiry in
// its owner's heap. A record takes 68 to 111 bytes as the tables grow; 79
// (88 with key shares) at 10,000,000 records. When records expire faster
// than new ones come, a shard's map is made anew once a quarter of its peak
// is gone and a heap's slice shrinks once half of it is empty: until then
// a record left may hold up to about 160 bytes.
const MemoryEntryBytes = 112

// MemoryOption configures a Memory store.
type MemoryOption func(*Memory)

// WithClock sets the clock used to decide expiry. Default time.Now.
func WithClock(now func() time.Time) MemoryOption {
	return func(m *Memory) { m.now = now }
}

// WithMaxEntries caps the number of live records, and so the heap the
// store holds (n × MemoryEntryBytes at most while it grows). When the cap is
// reached, Add fails with ErrUnavailable rather than forget an unexpired
// record, which would let a replay through. Default 0: no cap.
func WithMaxEntries(n int) MemoryOption {
	return func(m *Memory) { m.maxEntries = int64(n) }
}

// WithKeyShare bounds the live records of one owner (Entry.Owner, the key
// entry that verified the request) to n, so that one key cannot fill the
// store for every other: past it, that owner's Adds fail with a
// *QuotaError (wrapping ErrQuotaExceeded) saying when its earliest record
// expires, while other owners' Adds go on. Entries without an Owner are
// bounded by WithMaxEntries alone. Concurrent Adds of one owner may pass n
// by at most the number of shards. Default 0: no per-owner bound.
func WithKeyShare(n int) MemoryOption {
	return func(m *Memory) { m.keyShare = int64(n) }
}

// WithShards sets the number of shards, rounded up to a power of two.
// Default DefaultShards.
func WithShards(n int) MemoryOption {
	return func(m *Memory) {
		s := 1
		for s < n {
			s <<= 1
		}
		m.shards = make([]memoryShard, s)
	}
}

// NewMemory returns an empty exact store.
func NewMemory(opts ...MemoryOption) *Memory {
	m := &Memory{now: time.Now, seed: maphash.MakeSeed(), seed2: maphash.MakeSeed(),
		ownerIDs: map[string]uint32{}, owners: []*memOwner{nil}}
	for _, o := range opts {
		o(m)
	}
	if m.shards == nil {
		m.shards = make([]memoryShard, DefaultShards)
	}
	for i := range m.shards {
		m.shards[i].records = make(map[digest]int64)
		m.shards[i].owned = make(map[uint32]*ownedExpiry)
	}
	return m
}

// Add records e, or reports ErrReplayed.
func (m *Memory) Add(ctx context.Context, e Entry) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	key := m.digest(e.Scope, e.Key)
	now := UnixNano(m.now())
	exp := UnixNano(e.Expires)
	sh := &m.shards[key[0]&uint64(len(m.shards)-1)]
	var oid uint32
	if m.keyShare > 0 && e.Owner != "" {
		oid = m.ownerID(e.Owner)
	}
	over, err := m.add(sh, key, now, exp, oid)
	if !over {
		return err
	}
	// Records of other shards may have expired unreclaimed: reclaim every
	// shard (with no shard lock held) on the way to the owner's earliest
	// expiry, and try once more.
	wait := m.earliest(oid, now)
	if over, err = m.add(sh, key, now, exp, oid); over {
		return NewQuotaError(wait)
	}
	return err
}

// add is Add under the shard's lock; over reports the owner over its share.
func (m *Memory) add(sh *memoryShard, key digest, now, exp int64, oid uint32) (over bool, err error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	m.reclaim(sh, now)
	if old, ok := sh.records[key]; ok && old > now {
		return false, ErrReplayed
	}
	if exp <= now {
		// Already expired: nothing to remember, and the caller's window
		// check would reject a repeat anyway.
		return false, nil
	}
	var owned *ownedExpiry
	if oid != 0 {
		owned = sh.owned[oid]
		if owned == nil {
			owned = &ownedExpiry{o: m.owner(oid)}
			sh.owned[oid] = owned
		}
		if owned.o.count.Load() >= m.keyShare {
			return true, nil
		}
	}
	if m.maxEntries > 0 && m.count.Load() >= m.maxEntries {
		return false, fmt.Errorf("%w: memory store full (%d records)", ErrUnavailable, m.maxEntries)
	}
	if _, ok := sh.records[key]; !ok {
		m.count.Add(1)
	}
	sh.records[key] = exp
	if len(sh.records) > sh.peak {
		sh.peak = len(sh.records)
	}
	sh.expiry.push(expiryItem{at: exp, key: key, owner: oid})
	if owned != nil {
		owned.o.count.Add(1)
		owned.expiry.push(exp)
	}
	return false, nil
}

// ownerID interns an owner's name.
func (m *Memory) ownerID(name string) uint32 {
	m.ownersMu.RLock()
	id, ok := m.ownerIDs[name]
	m.ownersMu.RUnlock()
	if ok {
		return id
	}
	m.ownersMu.Lock()
	defer m.ownersMu.Unlock()
	if id, ok := m.ownerIDs[name]; ok {
		return id
	}
	m.owners = append(m.owners, &memOwner{})
	id = uint32(len(m.owners) - 1)
	m.ownerIDs[name] = id
	return id
}

func (m *Memory) owner(id uint32) *memOwner {
	m.ownersMu.RLock()
	defer m.ownersMu.RUnlock()
	return m.owners[id]
}

// earliest returns how long until owner oid's earliest live record
// expires; 0 when it holds none any more.
func (m *Memory) earliest(oid uint32, now int64) time.Duration {
	first := int64(0)
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		m.reclaim(sh, now)
		if owned := sh.owned[oid]; owned != nil && len(owned.expiry) > 0 {
			if at := owned.expiry[0]; first == 0 || at < first {
				first = at
			}
		}
		sh.mu.Unlock()
	}
	if first == 0 {
		return 0
	}
	return time.Duration(first - now)
}

// reclaim drops the shard's expired records. Called with sh.mu held.
func (m *Memory) reclaim(sh *memoryShard, now int64) {
	for len(sh.expiry) > 0 && sh.expiry[0].at <= now {
		it := sh.expiry.pop()
		// The key may have been re-added later with a newer expiry; only
		// the record matching this heap item goes.
		if cur, ok := sh.records[it.key]; ok && cur == it.at {
			delete(sh.records, it.key)
			m.count.Add(-1)
			if owned := sh.owned[it.owner]; it.owner != 0 && owned != nil {
				owned.o.count.Add(-1)
			}
		}
		if owned := sh.owned[it.owner]; it.owner != 0 && owned != nil {
			for len(owned.expiry) > 0 && owned.expiry[0] <= now {
				owned.expiry.pop()
			}
		}
	}
	if n := len(sh.records); sh.peak > 64 && n < sh.peak-sh.peak/4 {
		// A map keeps the slots of its peak: copy what is left into one
		// sized for it.
		records := make(map[digest]int64, n)
		for k, exp := range sh.records {
			records[k] = exp
		}
		sh.records, sh.peak = records, n
	}
}

// Len returns the number of live (unreclaimed) records.
func (m *Memory) Len() int {
	return int(m.count.Load())
}

// Sweep reclaims every expired record now. Add reclaims as it goes; Sweep is
// for idle periods.
func (m *Memory) Sweep() {
	now := m.now().UnixNano()
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		m.reclaim(sh, now)
		sh.mu.Unlock()
	}
}

// Ping reports the store healthy; it is in-process.
func (m *Memory) Ping(context.Context) error { return nil }

// digest is the 128-bit keyed digest of a scoped key.
type digest [2]uint64

func (m *Memory) digest(scope, key string) digest {
	var h maphash.Hash
	h.SetSeed(m.seed)
	writeScoped(&h, scope, key)
	var d digest
	d[0] = h.Sum64()
	h.SetSeed(m.seed2)
	writeScoped(&h, scope, key)
	d[1] = h.Sum64()
	return d
}

// writeScoped writes scope and key length-prefixed, so no two pairs share
// an encoding.
func writeScoped(h *maphash.Hash, scope, key string) {
	var n [8]byte
	l := uint64(len(scope))
	for i := 0; i < 8; i++ {
		n[i] = byte(l >> (8 * i))
	}
	_, _ = h.Write(n[:])
	_, _ = h.WriteString(scope)
	_, _ = h.WriteString(key)
}

// ScopedKey joins scope and key unambiguously.
func ScopedKey(scope, key string) string {
	return scope + "\x00" + key
}

type expiryItem struct {
	at    int64
	key   digest
	owner uint32 // 0: no owner
}

// expiryHeap is a min-heap on at, written out to avoid container/heap's
// interface boxing on every push.
type expiryHeap []expiryItem

func (h *expiryHeap) push(it expiryItem) {
	*h = append(*h, it)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if s[p].at <= s[i].at {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

func (h *expiryHeap) pop() expiryItem {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s[last] = expiryItem{}
	s = s[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(s) {
			break
		}
		c := l
		if r := l + 1; r < len(s) && s[r].at < s[l].at {
			c = r
		}
		if s[i].at <= s[c].at {
			break
		}
		s[i], s[c] = s[c], s[i]
		i = c
	}
	if c := cap(s); c > 64 && len(s) < c/2 {
		// Give back what a burst left: at most twice the items stay.
		s = append(make(expiryHeap, 0, len(s)+len(s)/4), s...)
	}
	*h = s
	return top
}

// timeHeap is a min-heap of expiries.
type timeHeap []int64

func (h *timeHeap) push(at int64) {
	*h = append(*h, at)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if s[p] <= s[i] {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

func (h *timeHeap) pop() {
	s := *h
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(s) {
			break
		}
		c := l
		if r := l + 1; r < len(s) && s[r] < s[l] {
			c = r
		}
		if s[i] <= s[c] {
			break
		}
		s[i], s[c] = s[c], s[i]
		i = c
	}
	if c := cap(s); c > 64 && len(s) < c/2 {
		s = append(make(timeHeap, 0, len(s)+len(s)/4), s...)
	}
	*h = s
}
