package bloom

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bits-and-blooms/bloom/v3"

	"github.com/replayguard/replayguard/bloom/bloomcore"
	"github.com/replayguard/replayguard/nonce"
)

// Defaults of Memory.
const (
	// DefaultBucketWidth is the span of signed timestamps sharing one bucket.
	DefaultBucketWidth = bloomcore.DefaultBucketWidth
	// DefaultPartitions is the number of independently locked partitions of
	// a bucket.
	DefaultPartitions = bloomcore.DefaultPartitions
	// DefaultMaxSubFilters is the most sub-filters a partition grows to:
	// four hold 1+2+4+8 = 15 times its share of the configured capacity.
	DefaultMaxSubFilters = 4
	// maxSubFiltersLimit keeps capacity·2^i within a uint.
	maxSubFiltersLimit = 24
)

// ErrInvalidParameter reports a constructor argument or option out of range.
var ErrInvalidParameter = bloomcore.ErrInvalidParameter

// Memory is an in-process nonce.Store keeping time-sliced, partitioned,
// scalable Bloom filters (see the package documentation for the layout).
// It may report a fresh entry as replayed with at most the configured
// false-positive rate; it never forgets an unexpired entry. It is safe for
// concurrent use: Adds of different partitions do not wait for each other.
type Memory struct {
	width      time.Duration
	partitions int
	now        func() time.Time

	partCap uint    // capacity of each partition's first sub-filter
	fpRate  float64 // target false-positive rate of a partition
	maxSubs int     // most sub-filters of a partition
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
)

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
// forgotten. It must be between 1 and 24. Default DefaultMaxSubFilters.
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

// NewMemory returns an empty Bloom-filter store sized for capacity entries
// per window at false-positive rate fpRate.
//
// window is the span of signed timestamps a request may carry (the timestamp
// tolerance plus the allowed future skew) and capacity the number of nonces
// expected within it. Each bucket of width G is sized for
// ceil(capacity·G/window) entries split evenly across its partitions; a
// partition receiving more grows rather than exceed fpRate. fpRate must be in
// (0, 1), capacity and window positive.
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
	case m.maxSubs < 1 || m.maxSubs > maxSubFiltersLimit:
		return nil, fmt.Errorf("%w: max sub-filters %d outside [1, %d]", ErrInvalidParameter, m.maxSubs, maxSubFiltersLimit)
	case !(m.keyShare > 0 && m.keyShare <= 1):
		return nil, fmt.Errorf("%w: key share %g outside (0, 1]", ErrInvalidParameter, m.keyShare)
	case m.now == nil:
		return nil, fmt.Errorf("%w: nil clock", ErrInvalidParameter)
	}

	pc, err := bloomcore.PartitionCapacity(capacity, m.width, window, m.partitions)
	if err != nil {
		return nil, err
	}
	m.partCap = pc
	if m.partCap > math.MaxInt32 {
		return nil, fmt.Errorf("%w: capacity %d is too large", ErrInvalidParameter, capacity)
	}
	if m.keyShare < 1 {
		most := float64(m.partCap) * float64(uint64(1)<<m.maxSubs-1)
		m.ownerCap = uint(max(m.keyShare*most, 1))
	}

	m.earliest.Store(math.MaxInt64)
	return m, nil
}

// Add records e, or returns nonce.ErrReplayed when e's scoped key is, or
// with at most the configured probability seems to be, already recorded in
// the bucket of e.Timestamp (the store's clock when zero). An entry whose
// Expires has passed is accepted and not recorded. A canceled ctx yields an
// error wrapping nonce.ErrUnavailable.
func (m *Memory) Add(ctx context.Context, e nonce.Entry) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", nonce.ErrUnavailable, err)
	}
	now := m.now()
	if !e.Expires.After(now) {
		return nil
	}
	nowNano, exp := nonce.UnixNano(now), nonce.UnixNano(e.Expires)
	if m.earliest.Load() <= nowNano {
		m.prune(nowNano)
	}

	idx := m.bucketIndex(e.Timestamp, now)
	data := []byte(nonce.ScopedKey(e.Scope, e.Key))

	b := m.lockBucket(idx, exp)
	defer m.mu.RUnlock()
	p := &b.parts[bloomcore.Partition(data, m.partitions)]
	owner := e.Owner
	if m.ownerCap == 0 {
		owner = ""
	}
	p.mu.Lock()
	res := p.testAndAdd(data, owner, m)
	p.mu.Unlock()
	switch res {
	case resultPresent:
		return nonce.ErrReplayed
	case resultFull:
		return fmt.Errorf("%w: bloom: partition full (%d sub-filters; raise nonce.capacity or nonce.max_subfilters)", nonce.ErrUnavailable, m.maxSubs)
	case resultOverShare:
		// The owner's count is per bucket: its requests signed in the
		// next bucket find room.
		next := bloomcore.BucketEnd(idx, m.width)
		return nonce.NewQuotaError(next.Sub(now))
	}
	b.extend(exp)
	return nil
}

// Contains reports whether Add would now report e as replayed, without
// recording it. A canceled ctx yields an error wrapping nonce.ErrUnavailable.
func (m *Memory) Contains(ctx context.Context, e nonce.Entry) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("%w: %w", nonce.ErrUnavailable, err)
	}
	now := m.now()
	idx := m.bucketIndex(e.Timestamp, now)
	data := []byte(nonce.ScopedKey(e.Scope, e.Key))

	m.mu.RLock()
	defer m.mu.RUnlock()
	b := m.buckets[idx]
	if b == nil || b.maxExpires.Load() <= now.UnixNano() {
		return false, nil
	}
	p := &b.parts[bloomcore.Partition(data, m.partitions)]
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.test(data), nil
}

// Sweep drops every bucket whose entries have all expired. Add drops them as
// it goes; Sweep is for idle periods.
func (m *Memory) Sweep() {
	m.prune(m.now().UnixNano())
}

// Ping reports the store healthy; it is in-process.
func (m *Memory) Ping(context.Context) error { return nil }

// BucketStats describes one bucket, for metrics.
type BucketStats = bloomcore.BucketStats

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
				set, total := uint64(sf.f.BitSet().Count()), uint64(sf.f.Cap())
				s.Entries += uint64(sf.n)
				s.Capacity += uint64(sf.capacity)
				s.BitsSet += set
				s.Bits += total
				s.SubFilters++
				fp += math.Pow(float64(set)/float64(total), float64(sf.f.K()))
			}
			p.mu.Unlock()
		}
		if s.Bits > 0 {
			s.FillRatio = float64(s.BitsSet) / float64(s.Bits)
		}
		s.FalsePositiveRate = fp / float64(len(b.parts))
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b BucketStats) int { return a.Start.Compare(b.Start) })
	return out
}

// bucketIndex returns the bucket of ts, with now standing in for a zero ts.
func (m *Memory) bucketIndex(ts, now time.Time) int64 {
	if ts.IsZero() {
		ts = now
	}
	return bloomcore.BucketIndex(ts, m.width)
}

// lockBucket returns bucket idx, creating it with expiry exp if missing, with
// m.mu held for reading. The caller releases it.
func (m *Memory) lockBucket(idx, exp int64) *bucket {
	for {
		m.mu.RLock()
		if b := m.buckets[idx]; b != nil {
			return b
		}
		m.mu.RUnlock()

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
	}
}

// prune drops the buckets expired at now.
func (m *Memory) prune(now int64) {
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
		earliest = min(earliest, exp)
	}
	m.earliest.Store(earliest)
}

type bucket struct {
	maxExpires atomic.Int64 // latest recorded expiry, unix nanoseconds
	parts      []partition
}

// extend raises the bucket's expiry to exp.
func (b *bucket) extend(exp int64) {
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

type subFilter struct {
	f        *bloom.BloomFilter
	capacity uint // entries it is sized for
	n        uint // entries inserted
}

// newSubFilter returns sub-filter i of a partition whose first sub-filter
// holds capacity entries, for a partition target rate fpRate: capacity·2^i
// entries at fpRate/2^(i+1), so that the rates of all sub-filters sum to
// less than fpRate.
func newSubFilter(i int, capacity uint, fpRate float64) *subFilter {
	c := bloomcore.SubCapacity(capacity, i)
	m, k := bloomcore.Optimal(c, bloomcore.SubRate(fpRate, i))
	return &subFilter{f: bloom.New(m, k), capacity: c}
}

// Outcomes of partition.testAndAdd.
const (
	resultAdded = iota
	resultPresent
	resultFull
	resultOverShare
)

// testAndAdd reports whether data is in any sub-filter and, if not, inserts
// it into the newest, stacking a new one first when the newest is full,
// unless the partition is at m.maxSubs full sub-filters or owner at its
// share. Called with p.mu held.
func (p *partition) testAndAdd(data []byte, owner string, m *Memory) int {
	n := len(p.subs)
	if n > 0 && testAny(data, p.subs) {
		return resultPresent
	}
	if owner != "" && p.owners[owner] >= m.ownerCap {
		return resultOverShare
	}
	if n == 0 || p.subs[n-1].n >= p.subs[n-1].capacity {
		if n >= m.maxSubs {
			return resultFull
		}
		p.subs = append(p.subs, newSubFilter(n, m.partCap, m.fpRate))
		n++
	}
	last := p.subs[n-1]
	last.f.Add(data)
	last.n++
	if owner != "" {
		if p.owners == nil {
			p.owners = map[string]uint{}
		}
		p.owners[owner]++
	}
	return resultAdded
}

// test reports whether data is in any sub-filter. Called with p.mu held.
func (p *partition) test(data []byte) bool {
	n := len(p.subs)
	if n == 0 {
		return false
	}
	return testAny(data, p.subs[:n-1]) || p.subs[n-1].f.Test(data)
}

// testAny reports whether data is in any of subs, hashing it once.
func testAny(data []byte, subs []*subFilter) bool {
	if len(subs) == 0 {
		return false
	}
	var k uint
	for _, sf := range subs {
		k = max(k, sf.f.K())
	}
	locs := bloom.Locations(data, k)
	for _, sf := range subs {
		if sf.f.TestLocations(locs[:sf.f.K()]) {
			return true
		}
	}
	return false
}
