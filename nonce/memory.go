package nonce

import (
	"context"
	"encoding/binary"
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
	// bound beyond maxEntries. Owners are interned: owners maps a name to
	// its *memOwner, whose id (from 1; 0 is "no owner") the shards know it
	// by.
	keyShare int64
	ownersMu sync.Mutex // held while an owner is added
	owners   sync.Map
	nOwners  uint32
}

// memOwner is one owner's account.
type memOwner struct {
	id    uint32
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
	m := &Memory{now: time.Now, seed: maphash.MakeSeed(), seed2: maphash.MakeSeed()}
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
//
// Add and what it runs on every call are functions rather than methods,
// with refusals worded by functions of their own: under the Yaegi
// interpreter (the Traefik plugin loads this package) a method call of an
// interpreted type builds a reflect.MakeFunc wrapper each time, a defer
// costs as much, and every value a function body could hold is allocated
// on each call, whichever branch runs.
func (m *Memory) Add(ctx context.Context, e Entry) error {
	if ctx.Err() != nil {
		return canceled(ctx)
	}
	var o *memOwner
	if m.keyShare > 0 && e.Owner != "" {
		o = ownerOf(m, e.Owner)
	}
	key := digestOf(m, e.Scope, e.Key)
	now := UnixNano(m.now())
	exp := UnixNano(e.Expires)
	sh := &m.shards[key[0]&uint64(len(m.shards)-1)]
	sh.mu.Lock()
	over, err := add(m, sh, key, now, exp, o)
	sh.mu.Unlock()
	if over {
		return overShare(m, sh, key, now, exp, o)
	}
	return err
}

// canceled is Add's error for a canceled ctx.
func canceled(ctx context.Context) error {
	return fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
}

// overShare is Add after owner o was found over its share: records of
// other shards may have expired unreclaimed, so every shard is reclaimed
// (with no shard lock held) on the way to the owner's earliest expiry, and
// the record is tried once more.
func overShare(m *Memory, sh *memoryShard, key digest, now, exp int64, o *memOwner) error {
	wait := m.earliest(o.id, now)
	sh.mu.Lock()
	over, err := add(m, sh, key, now, exp, o)
	sh.mu.Unlock()
	if over {
		return NewQuotaError(wait)
	}
	return err
}

// add is Add with sh.mu held; over reports owner o (nil: none) over its
// share.
func add(m *Memory, sh *memoryShard, key digest, now, exp int64, o *memOwner) (over bool, err error) {
	if len(sh.expiry) > 0 && sh.expiry[0].at <= now {
		reclaim(m, sh, now)
	}
	old, had := sh.records[key]
	if had && old > now {
		return false, ErrReplayed
	}
	if exp <= now {
		// Already expired: nothing to remember, and the caller's window
		// check would reject a repeat anyway.
		return false, nil
	}
	var owned *ownedExpiry
	if o != nil {
		owned = sh.owned[o.id]
		if owned == nil {
			owned = newOwned(sh, o)
		}
		if o.count.Load() >= m.keyShare {
			return true, nil
		}
	}
	if m.maxEntries > 0 && m.count.Load() >= m.maxEntries {
		return false, full(m)
	}
	if !had {
		m.count.Add(1)
	}
	sh.records[key] = exp
	if len(sh.records) > sh.peak {
		sh.peak = len(sh.records)
	}
	if o == nil {
		pushExpiry(&sh.expiry, expiryItem{at: exp, key: key})
		return false, nil
	}
	pushExpiry(&sh.expiry, expiryItem{at: exp, key: key, owner: o.id})
	o.count.Add(1)
	pushTime(&owned.expiry, exp)
	return false, nil
}

// newOwned adds owner o's account to shard sh. Called with sh.mu held.
func newOwned(sh *memoryShard, o *memOwner) *ownedExpiry {
	owned := &ownedExpiry{o: o}
	sh.owned[o.id] = owned
	return owned
}

// full is Add's error when the store holds its most records.
func full(m *Memory) error {
	return fmt.Errorf("%w: memory store full (%d records)", ErrUnavailable, m.maxEntries)
}

// ownerOf returns the account of the owner named name, creating it.
func ownerOf(m *Memory, name string) *memOwner {
	if o, ok := m.owners.Load(name); ok {
		return o.(*memOwner)
	}
	return addOwner(m, name)
}

// addOwner returns the account of the owner named name, created unless
// another goroutine did first.
func addOwner(m *Memory, name string) *memOwner {
	m.ownersMu.Lock()
	defer m.ownersMu.Unlock()
	if o, ok := m.owners.Load(name); ok {
		return o.(*memOwner)
	}
	m.nOwners++
	o := &memOwner{id: m.nOwners}
	m.owners.Store(name, o)
	return o
}

// earliest returns how long until owner oid's earliest live record
// expires; 0 when it holds none any more.
func (m *Memory) earliest(oid uint32, now int64) time.Duration {
	first := int64(0)
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		reclaim(m, sh, now)
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
func reclaim(m *Memory, sh *memoryShard, now int64) {
	for len(sh.expiry) > 0 && sh.expiry[0].at <= now {
		it := popExpiry(&sh.expiry)
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
				popTime(&owned.expiry)
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
		reclaim(m, sh, now)
		sh.mu.Unlock()
	}
}

// Ping reports the store healthy; it is in-process.
func (m *Memory) Ping(context.Context) error { return nil }

// digest is the 128-bit keyed digest of a scoped key.
type digest [2]uint64

func digestOf(m *Memory, scope, key string) digest {
	// The scope's length, then scope and key: no two pairs share an
	// encoding. maphash hashes it compiled, one call per seed.
	var buf [96]byte
	b := binary.LittleEndian.AppendUint64(buf[:0], uint64(len(scope)))
	b = append(b, scope...)
	b = append(b, key...)
	return digest{maphash.Bytes(m.seed, b), maphash.Bytes(m.seed2, b)}
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

func pushExpiry(h *expiryHeap, it expiryItem) {
	*h = append(*h, it)
	// Expiries mostly arrive in order: the new item stays a leaf.
	if n := len(*h); n > 1 && (*h)[(n-2)/2].at > it.at {
		siftUp(*h)
	}
}

// siftUp moves the last item of s up to its place.
func siftUp(s expiryHeap) {
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

func popExpiry(h *expiryHeap) expiryItem {
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

func pushTime(h *timeHeap, at int64) {
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

func popTime(h *timeHeap) {
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
