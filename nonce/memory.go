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
}

var _ Store = (*Memory)(nil)

type memoryShard struct {
	mu      sync.Mutex
	records map[digest]int64 // scoped key digest -> expiry, unix nanoseconds
	expiry  expiryHeap
	_       [40]byte // keep shards on separate cache lines
}

// MemoryOption configures a Memory store.
type MemoryOption func(*Memory)

// WithClock sets the clock used to decide expiry. Default time.Now.
func WithClock(now func() time.Time) MemoryOption {
	return func(m *Memory) { m.now = now }
}

// WithMaxEntries caps the number of live records. When the cap is reached,
// Add fails with ErrUnavailable rather than forget an unexpired record, which
// would let a replay through. Default 0: no cap.
func WithMaxEntries(n int) MemoryOption {
	return func(m *Memory) { m.maxEntries = int64(n) }
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

	sh.mu.Lock()
	defer sh.mu.Unlock()
	m.reclaim(sh, now)
	if old, ok := sh.records[key]; ok && old > now {
		return ErrReplayed
	}
	if exp <= now {
		// Already expired: nothing to remember, and the caller's window
		// check would reject a repeat anyway.
		return nil
	}
	if m.maxEntries > 0 && m.count.Load() >= m.maxEntries {
		return fmt.Errorf("%w: memory store full (%d records)", ErrUnavailable, m.maxEntries)
	}
	if _, ok := sh.records[key]; !ok {
		m.count.Add(1)
	}
	sh.records[key] = exp
	sh.expiry.push(expiryItem{at: exp, key: key})
	return nil
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
		}
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
	at  int64
	key digest
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
	*h = s
	return top
}
