package bloomcore

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replayguard/replayguard/nonce"
)

// Defaults and bounds of Memory.
const (
	// DefaultMaxSubFilters is the most sub-filters a partition grows to:
	// four hold 1+2+4+8 = 15 times its share of the configured capacity.
	DefaultMaxSubFilters = 4
	// MaxSubFilters bounds WithMaxSubFilters: capacity·2^i stays within a
	// uint.
	MaxSubFilters = 24
)

// Memory is an in-process nonce.Store keeping time-sliced, partitioned,
// scalable Bloom filters in the layout of this package: an entry's bucket,
// partition and bit positions are those every other store of the layout
// computes. It may report a fresh entry as replayed with at most the
// configured false-positive rate; it never forgets an unexpired entry. It is
// safe for concurrent use: Adds of different partitions do not wait for
// each other.
//
// The filters' bits are kept in words of the standard library's types, so
// that the Traefik plugin, which Yaegi interprets, runs this very store.
// For the same reason the code run on every Add is made of functions
// rather than methods, without defers, with the rare paths in functions of
// their own: under Yaegi a method call of an interpreted type builds a
// reflect.MakeFunc wrapper, a defer costs as much, and a call allocates
// every value its function body could hold.
type Memory struct {
	width      time.Duration
	partitions int
	now        func() time.Time
	onGrowth   func(Growth)

	partCap uint      // capacity of each partition's first sub-filter
	fpRate  float64   // target false-positive rate of a partition
	maxSubs int       // most sub-filters of a partition
	geom    []subGeom // of sub-filters 0..maxSubs-1
	// keyShare is the fraction of a partition's most entries one owner
	// may hold (1: no per-owner bound); ownerCap is that many entries.
	keyShare float64
	ownerCap uint

	// mu guards the buckets map. Add holds it for reading for its whole
	// check-and-insert so that a bucket is never dropped under it; dropping
	// takes it for writing.
	mu      sync.RWMutex
	buckets map[int64]*bucket
	// earliest is at most the smallest expiry of any bucket, in unix
	// nanoseconds: while the clock is before it nothing can be dropped.
	earliest atomic.Int64
}

var (
	_ nonce.Store  = (*Memory)(nil)
	_ nonce.Pinger = (*Memory)(nil)
	_ Filter       = (*Memory)(nil)
)

// Growth reports that a partition of a bucket stacked a sub-filter: the
// bucket received more entries than its share of the configured capacity.
type Growth struct {
	// Bucket is the first signed timestamp of the bucket.
	Bucket time.Time
	// Partition is the partition that grew.
	Partition int
	// SubFilters is the partition's number of sub-filters now, at least 2.
	SubFilters int
}

// Option configures a Memory store.
type Option func(*Memory)

// WithBucketWidth sets the span of signed timestamps sharing one bucket.
// Narrower buckets are dropped sooner after their entries expire, wider ones
// mean fewer, larger filters. It must be positive. Default
// DefaultBucketWidth (one minute).
func WithBucketWidth(d time.Duration) Option {
	return func(m *Memory) { m.width = d }
}

// WithPartitions sets the number of independently locked partitions each
// bucket is split into. It must be at least 1. Default DefaultPartitions (16).
func WithPartitions(n int) Option {
	return func(m *Memory) { m.partitions = n }
}

// WithMaxSubFilters sets the most sub-filters a partition stacks as it
// grows; the n-th holds 2^(n-1) times the first, so a partition holds at
// most 2^n - 1 times its share of the configured capacity. Past that, Add
// refuses new entries with an error wrapping nonce.ErrUnavailable (a
// replay is still reported as one): memory stays bounded and nothing is
// forgotten. It must be between 1 and MaxSubFilters. Default
// DefaultMaxSubFilters.
func WithMaxSubFilters(n int) Option {
	return func(m *Memory) { m.maxSubs = n }
}

// WithKeyShare bounds the entries one owner (nonce.Entry.Owner) may add to
// a bucket to the fraction share of the most the bucket holds (see
// WithMaxSubFilters), so that one key cannot fill the store for every
// other: past it, that owner's Adds fail with a *nonce.QuotaError whose
// RetryAfter is the time until the next bucket begins, while other owners'
// Adds go on. Counts are kept per partition, into which an owner's entries
// spread evenly. Entries without an Owner are bounded by the store's limit
// alone. share must be in (0, 1]. Default 1: no per-owner bound.
func WithKeyShare(share float64) Option {
	return func(m *Memory) { m.keyShare = share }
}

// WithClock sets the clock used to decide expiry, and the bucket of an entry
// without a timestamp. Default time.Now.
func WithClock(now func() time.Time) Option {
	return func(m *Memory) { m.now = now }
}

// WithGrowth sets a function called, after the Add that caused it, each
// time a partition stacks a sub-filter. It must be fast and safe for
// concurrent use. Default none.
func WithGrowth(f func(Growth)) Option {
	return func(m *Memory) { m.onGrowth = f }
}

// NewMemory returns an empty Bloom-filter store sized for capacity entries
// per window at false-positive rate fpRate.
//
// window is the span of signed timestamps a request may carry (the timestamp
// tolerance plus the allowed future skew) and capacity the number of nonces
// expected within it. Each bucket of width G is sized for
// ceil(capacity·G/window) entries split evenly across its partitions
// (PartitionCapacity); a partition receiving more grows rather than exceed
// fpRate. fpRate must be in (0, 1), capacity and window positive.
func NewMemory(capacity uint, fpRate float64, window time.Duration, opts ...Option) (*Memory, error) {
	m := &Memory{
		width:      DefaultBucketWidth,
		partitions: DefaultPartitions,
		now:        time.Now,
		fpRate:     fpRate,
		maxSubs:    DefaultMaxSubFilters,
		keyShare:   1,
		buckets:    make(map[int64]*bucket),
	}
	for _, o := range opts {
		o(m)
	}
	switch {
	case capacity == 0:
		return nil, fmt.Errorf("%w: capacity must be positive", ErrInvalidParameter)
	case !(fpRate > 0 && fpRate < 1):
		return nil, fmt.Errorf("%w: false-positive rate %g outside (0, 1)", ErrInvalidParameter, fpRate)
	case window <= 0:
		return nil, fmt.Errorf("%w: window %v must be positive", ErrInvalidParameter, window)
	case m.width <= 0:
		return nil, fmt.Errorf("%w: bucket width %v must be positive", ErrInvalidParameter, m.width)
	case m.partitions < 1:
		return nil, fmt.Errorf("%w: partitions %d must be at least 1", ErrInvalidParameter, m.partitions)
	case m.maxSubs < 1 || m.maxSubs > MaxSubFilters:
		return nil, fmt.Errorf("%w: max sub-filters %d outside [1, %d]", ErrInvalidParameter, m.maxSubs, MaxSubFilters)
	case !(m.keyShare > 0 && m.keyShare <= 1):
		return nil, fmt.Errorf("%w: key share %g outside (0, 1]", ErrInvalidParameter, m.keyShare)
	case m.now == nil:
		return nil, fmt.Errorf("%w: nil clock", ErrInvalidParameter)
	}

	pc, err := PartitionCapacity(capacity, m.width, window, m.partitions)
	if err != nil {
		return nil, err
	}
	if pc > math.MaxInt32 {
		return nil, fmt.Errorf("%w: capacity %d is too large", ErrInvalidParameter, capacity)
	}
	m.partCap = pc
	m.geom = make([]subGeom, m.maxSubs)
	for i := range m.geom {
		c := SubCapacity(pc, i)
		bits, k := Optimal(c, SubRate(fpRate, i))
		m.geom[i] = subGeom{capacity: c, m: bits, k: k}
	}
	if m.keyShare < 1 {
		most := float64(m.partCap) * float64(uint64(1)<<m.maxSubs-1)
		m.ownerCap = uint(math.Max(m.keyShare*most, 1))
	}

	m.earliest.Store(math.MaxInt64)
	return m, nil
}

// Outcomes of testAndAdd.
const (
	resultAdded = iota
	resultGrew  // added, after stacking a sub-filter
	resultPresent
	resultFull
	resultOverShare
)

// Add records e, or returns nonce.ErrReplayed when e's scoped key is, or
// with at most the configured probability seems to be, already recorded in
// the bucket of e.Timestamp (the store's clock when zero). An entry whose
// Expires has passed is accepted and not recorded. A canceled ctx yields an
// error wrapping nonce.ErrUnavailable.
func (m *Memory) Add(ctx context.Context, e nonce.Entry) error {
	if ctx.Err() != nil {
		return canceled(ctx)
	}
	now := m.now()
	if !e.Expires.After(now) {
		return nil
	}
	nowNano, exp := nonce.UnixNano(now), nonce.UnixNano(e.Expires)
	if m.earliest.Load() <= nowNano {
		prune(m, nowNano)
	}
	ts := e.Timestamp
	if ts.IsZero() {
		ts = now
	}
	idx := BucketIndex(ts, m.width)
	data := []byte(nonce.ScopedKey(e.Scope, e.Key))
	part := Partition(data, m.partitions)
	owner := e.Owner
	if m.ownerCap == 0 {
		owner = ""
	}

	b := lockBucket(m, idx, exp)
	p := &b.parts[part]
	p.mu.Lock()
	res := testAndAdd(p, data, owner, m)
	p.mu.Unlock()
	if res == resultAdded || res == resultGrew {
		extend(b, exp)
	}
	m.mu.RUnlock()
	switch res {
	case resultAdded:
		return nil
	case resultPresent:
		return nonce.ErrReplayed
	}
	return outcome(m, res, idx, part, now)
}

// outcome is what Add returns for res, other than a plain add or a replay.
func outcome(m *Memory, res int, idx int64, part int, now time.Time) error {
	switch res {
	case resultGrew:
		if m.onGrowth != nil {
			m.onGrowth(Growth{Bucket: time.Unix(0, idx*int64(m.width)).UTC(), Partition: part, SubFilters: subFilters(m, idx, part)})
		}
		return nil
	case resultFull:
		return fmt.Errorf("%w: bloom: partition full (%d sub-filters; raise nonce.capacity or nonce.max_subfilters)", nonce.ErrUnavailable, m.maxSubs)
	}
	// Over the owner's share. The owner's count is per bucket: its
	// requests signed in the next bucket find room.
	return nonce.NewQuotaError(BucketEnd(idx, m.width).Sub(now))
}

// subFilters returns the number of sub-filters of partition part of
// bucket idx.
func subFilters(m *Memory, idx int64, part int) int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	b := m.buckets[idx]
	if b == nil {
		return 0
	}
	p := &b.parts[part]
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.subs)
}

func canceled(ctx context.Context) error {
	return fmt.Errorf("%w: %w", nonce.ErrUnavailable, ctx.Err())
}

// Contains reports whether Add would now report e as replayed, without
// recording it. A canceled ctx yields an error wrapping nonce.ErrUnavailable.
func (m *Memory) Contains(ctx context.Context, e nonce.Entry) (bool, error) {
	if ctx.Err() != nil {
		return false, canceled(ctx)
	}
	now := m.now()
	ts := e.Timestamp
	if ts.IsZero() {
		ts = now
	}
	idx := BucketIndex(ts, m.width)
	data := []byte(nonce.ScopedKey(e.Scope, e.Key))
	part := Partition(data, m.partitions)
	m.mu.RLock()
	b := m.buckets[idx]
	seen := false
	if b != nil && b.maxExpires.Load() > nonce.UnixNano(now) {
		p := &b.parts[part]
		p.mu.Lock()
		if n := len(p.subs); n > 0 {
			seen = hasAny(p.subs, Locations(data, p.subs[n-1].k))
		}
		p.mu.Unlock()
	}
	m.mu.RUnlock()
	return seen, nil
}

// Sweep drops every bucket whose entries have all expired. Add drops them as
// it goes; Sweep is for idle periods.
func (m *Memory) Sweep() {
	prune(m, nonce.UnixNano(m.now()))
}

// Ping reports the store healthy; it is in-process.
func (m *Memory) Ping(context.Context) error { return nil }

// Stats returns the live buckets, oldest first.
func (m *Memory) Stats() []BucketStats {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]BucketStats, 0, len(m.buckets))
	for idx, b := range m.buckets {
		s := BucketStats{
			Start:   time.Unix(0, idx*int64(m.width)).UTC(),
			Expires: time.Unix(0, b.maxExpires.Load()).UTC(),
		}
		var fp float64
		for i := range b.parts {
			p := &b.parts[i]
			p.mu.Lock()
			for _, sf := range p.subs {
				set := uint64(countBits(sf.words))
				s.Entries += uint64(sf.n)
				s.Capacity += uint64(sf.capacity)
				s.BitsSet += set
				s.Bits += uint64(sf.m)
				s.SubFilters++
				fp += math.Pow(float64(set)/float64(sf.m), float64(sf.k))
			}
			p.mu.Unlock()
		}
		if s.Bits > 0 {
			s.FillRatio = float64(s.BitsSet) / float64(s.Bits)
		}
		s.FalsePositiveRate = fp / float64(len(b.parts))
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// countBits returns the number of set bits in words.
func countBits(words []uint64) int {
	n := 0
	for _, w := range words {
		n += bits.OnesCount64(w)
	}
	return n
}

// lockBucket returns bucket idx, creating it with expiry exp if missing, with
// m.mu held for reading. The caller releases it.
func lockBucket(m *Memory, idx, exp int64) *bucket {
	m.mu.RLock()
	if b := m.buckets[idx]; b != nil {
		return b
	}
	m.mu.RUnlock()
	return createBucket(m, idx, exp)
}

// createBucket is lockBucket of a bucket that did not exist a moment ago.
func createBucket(m *Memory, idx, exp int64) *bucket {
	for {
		m.mu.Lock()
		if m.buckets[idx] == nil {
			b := &bucket{parts: make([]partition, m.partitions)}
			// Created with the entry's expiry so that it is not dropped
			// between this and the insert.
			b.maxExpires.Store(exp)
			m.buckets[idx] = b
			if exp < m.earliest.Load() {
				m.earliest.Store(exp)
			}
		}
		m.mu.Unlock()

		m.mu.RLock()
		if b := m.buckets[idx]; b != nil {
			return b
		}
		m.mu.RUnlock()
	}
}

// prune drops the buckets expired at now.
func prune(m *Memory, now int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.earliest.Load() > now {
		return // another goroutine pruned first
	}
	earliest := int64(math.MaxInt64)
	for idx, b := range m.buckets {
		exp := b.maxExpires.Load()
		if exp <= now {
			delete(m.buckets, idx)
			continue
		}
		if exp < earliest {
			earliest = exp
		}
	}
	m.earliest.Store(earliest)
}

type bucket struct {
	maxExpires atomic.Int64 // latest recorded expiry, unix nanoseconds
	parts      []partition
}

// extend raises the bucket's expiry to exp.
func extend(b *bucket, exp int64) {
	for {
		cur := b.maxExpires.Load()
		if cur >= exp || b.maxExpires.CompareAndSwap(cur, exp) {
			return
		}
	}
}

type partition struct {
	mu   sync.Mutex
	subs []*subFilter // oldest first; allocated on first insert
	// owners counts each owner's entries, under a key share.
	owners map[string]uint
	_      [24]byte // keep partitions on separate cache lines
}

// subGeom is the size of a sub-filter: sub-filter i of a partition whose
// first sub-filter holds c entries, for a partition target rate p, holds
// SubCapacity(c, i) entries at SubRate(p, i) (so that the rates of all
// sub-filters sum to less than p), in the m bits and k probes Optimal
// gives. k never decreases with i.
type subGeom struct {
	capacity, m, k uint
}

// subFilter is one Bloom filter of m bits probed k times, the bits in
// words (bit i is words[i/64] bit i%64).
type subFilter struct {
	words    []uint64
	m, k     uint
	capacity uint // entries it is sized for
	n        uint // entries inserted
}

// newSubFilter returns a sub-filter of geometry g.
func newSubFilter(g subGeom) *subFilter {
	return &subFilter{words: make([]uint64, (g.m+63)/64), m: g.m, k: g.k, capacity: g.capacity}
}

// testAndAdd reports whether data is in any sub-filter and, if not, inserts
// it into the newest, stacking a new one first when the newest is full,
// unless the partition is at m.maxSubs full sub-filters or owner at its
// share. Called with p.mu held.
func testAndAdd(p *partition, data []byte, owner string, m *Memory) int {
	n := len(p.subs)
	grow := n == 0 || p.subs[n-1].n >= p.subs[n-1].capacity
	// One hashing serves every sub-filter: the newest probes the most.
	k := m.geom[0].k
	if grow && n < m.maxSubs {
		k = m.geom[n].k
	} else if n > 0 {
		k = p.subs[n-1].k
	}
	locs := Locations(data, k)
	if n > 0 && hasAny(p.subs, locs) {
		return resultPresent
	}
	if owner != "" && p.owners[owner] >= m.ownerCap {
		return resultOverShare
	}
	res := resultAdded
	if grow {
		if n >= m.maxSubs {
			return resultFull
		}
		p.subs = append(p.subs, newSubFilter(m.geom[n]))
		if n > 0 {
			res = resultGrew
		}
		n++
	}
	last := p.subs[n-1]
	setBits(last, locs)
	last.n++
	if owner != "" {
		countOwner(p, owner)
	}
	return res
}

// countOwner counts one more entry of owner in p.
func countOwner(p *partition, owner string) {
	if p.owners == nil {
		p.owners = map[string]uint{}
	}
	p.owners[owner]++
}

// setBits sets the bits of the first sf.k of locs, Locations of an
// element, in sf. (The shifted constants are typed: Yaegi takes an untyped
// one for an int.)
func setBits(sf *subFilter, locs []uint64) {
	m := uint64(sf.m)
	for _, l := range locs[:sf.k] {
		l %= m
		sf.words[l>>6] |= uint64(1) << (l & 63)
	}
}

// hasAny reports whether any of subs has every bit of the element whose
// Locations locs are (at least as many as the newest sub-filter probes).
func hasAny(subs []*subFilter, locs []uint64) bool {
	for _, sf := range subs {
		if hasBits(sf, locs) {
			return true
		}
	}
	return false
}

// hasBits reports whether sf has every bit of the first sf.k of locs set.
func hasBits(sf *subFilter, locs []uint64) bool {
	m := uint64(sf.m)
	for _, l := range locs[:sf.k] {
		l %= m
		if sf.words[l>>6]&(uint64(1)<<(l&63)) == 0 {
			return false
		}
	}
	return true
}
