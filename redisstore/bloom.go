package redisstore

import (
	"context"
	"fmt"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replayguard/replayguard/bloom/bloomcore"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/redisstore/layout"
)

// Growth bounds. Sub-filter i holds capacity·2^i entries, so 24 levels are
// 16 million times the configured capacity; and a Redis string holds at
// most 2^32 bits. Past either, Add fails with nonce.ErrUnavailable rather
// than exceed the false-positive target.
const (
	maxSubFilters = 24
	maxBitmapBits = 1<<32 - layout.CounterBits
)

// errBloomFull reports a partition that cannot grow any further.
var errBloomFull = fmt.Errorf("%w: bloom partition cannot grow further", nonce.ErrUnavailable)

// BloomNonce is the Bloom nonce store in Redis bitmaps (`mode: bloom`).
//
// An entry's bucket is floor(signed timestamp / width), so every instance,
// whatever its clock, picks the same bucket; its partition is FNV-1a of the
// scoped key modulo the number of partitions, and each partition is one
// slot-local family of keys. A check is one command,
//
//	BITFIELD <sub-filter> SET u1 <pos₁> 1 … SET u1 <posₖ> 1 OVERFLOW SAT INCRBY u32 <m> 1
//
// atomic test-and-set: any returned old bit 0 means the entry is fresh. The
// positions are bloomcore.Locations of the scoped key modulo the
// sub-filter's m, as package bloom's in-process filters place them; the
// sizes come from bloomcore.Optimal for the partition's share plus a margin
// for the uneven split (bloomcore.WithMargin), rounded up to fill the
// allocator's size class (layout.BitmapBits). The counter after the filter
// bits counts checks; a sub-filter is full when it passes what the bitmap
// holds at its rate (bloomcore.Holds), so the bits the rounding added raise
// the capacity too.
//
// # Growth
//
// When a check finds the counter past the sub-filter's capacity, the
// instance moves the partition to the next sub-filter, twice as large at
// half the rate (the rates sum below the target), and from then on checks
// all older sub-filters with BITFIELD_RO and, only if none holds the entry,
// sets its bits in the newest: one script run (layout.BloomGrownScript), one
// round trip. An instance that did not know yet (its check went to a full
// sub-filter) reads the newer sub-filters before calling the entry fresh, one
// round trip each, so an entry is never accepted twice across the switch.
//
// # Expiry
//
// Every bitmap expires by itself at the latest Entry.Expires recorded in it
// (rounded up to at most a second): the first check of a partition with a
// later expiry than this instance has set sends PEXPIREAT … NX and
// PEXPIREAT … GT in the same round trip, in practice once per partition and
// second of signed timestamps. A check whose counter comes back 1 created
// the bitmap, and sets its expiry right after if it did not already (Redis
// restarted empty, or was flushed, since this instance last set it). No key
// outlives its entries by more than the rounding.
//
// A BITFIELD that reached Redis must not be sent again (the second would see
// its own bits), so it is sent Once: a timeout is reported as
// nonce.ErrUnavailable.
type BloomNonce struct {
	c       Client
	opts    options
	fpRate  float64
	partCap uint

	geom []subGeom // of sub-filters 0..maxSubFilters-1

	mu        sync.RWMutex
	parts     map[partID]*partState
	nextPrune atomic.Int64
	gen       atomic.Uint64 // counts failed calls; expiries set before one are set again
}

var (
	bloomGrownScript = NewScript(layout.BloomGrownScript)
	bloomClaimScript = NewScript(layout.BloomClaimScript)
)

var (
	_ nonce.Store  = (*BloomNonce)(nil)
	_ nonce.Pinger = (*BloomNonce)(nil)
)

type subGeom struct {
	capacity uint
	m, k     uint
}

type partID struct {
	bucket int64
	part   int
}

type partState struct {
	key0    string       // the key of sub-filter 0
	cur     atomic.Int32 // newest sub-filter this instance knows of
	lastUse atomic.Int64 // unix milliseconds

	mu       sync.Mutex
	gen      uint64 // b.gen when expireMs and expSubs were set
	expireMs int64  // expiry set on sub-filters 0..expSubs-1
	expSubs  int
}

// NewBloomNonce returns a Bloom nonce store on c for capacity entries per
// window at false-positive rate fpRate, where window is the span of signed
// timestamps a request may carry (timestamp tolerance plus future skew).
// Every instance sharing the Redis must use the same capacity, rate,
// window, bucket width and partitions. The caller keeps ownership of c.
func NewBloomNonce(c Client, capacity uint, fpRate float64, window time.Duration, opts ...Option) (*BloomNonce, error) {
	o := newOptions(opts)
	if !(fpRate > 0 && fpRate < 1) {
		return nil, fmt.Errorf("%w: false-positive rate %g outside (0, 1)", bloomcore.ErrInvalidParameter, fpRate)
	}
	pc, err := bloomcore.PartitionCapacity(capacity, o.width, window, o.partitions)
	if err != nil {
		return nil, err
	}
	b := &BloomNonce{c: c, opts: o, fpRate: fpRate, partCap: pc, parts: make(map[partID]*partState)}
	b.geom = make([]subGeom, maxSubFilters)
	for i := range b.geom {
		b.geom[i] = b.geometry(i)
	}
	return b, nil
}

// sub returns the geometry of sub-filter i.
func (b *BloomNonce) sub(i int) subGeom {
	if i < len(b.geom) {
		return b.geom[i]
	}
	return b.geometry(i)
}

// geometry computes the geometry of sub-filter i.
func (b *BloomNonce) geometry(i int) subGeom {
	p := bloomcore.SubRate(b.fpRate, i)
	m0, k := bloomcore.Optimal(bloomcore.WithMargin(bloomcore.SubCapacity(b.partCap, i)), p)
	m := layout.BitmapBits(m0)
	return subGeom{capacity: bloomcore.Holds(m, k, p), m: m, k: k}
}

// SubFilter returns the capacity (the count past which it is full), filter
// bits and probes of sub-filter i of every partition.
func (b *BloomNonce) SubFilter(i int) (capacity, m, k uint) {
	g := b.sub(i)
	return g.capacity, g.m, g.k
}

func (b *BloomNonce) key(id partID, i int) string {
	g := b.sub(i)
	return b.opts.keys.Bloom(b.opts.width, id.bucket, id.part, i, g.m, g.k)
}

// Add records e, or returns nonce.ErrReplayed when e's scoped key is, or
// with at most the configured probability seems to be, already recorded in
// the bucket of e.Timestamp (the clock's time when zero). Redis errors and
// timeouts wrap nonce.ErrUnavailable. An entry already expired is accepted
// without a call.
func (b *BloomNonce) Add(ctx context.Context, e nonce.Entry) error {
	_, err := b.addClaiming(ctx, e, nil)
	return err
}

// addClaiming is Add that, when cl is set and e's entry is fresh, also
// claims cl's idempotency record in the check's script run
// (layout.BloomClaimScript), and returns ClaimScript's reply. The reply is
// nil when no claim was made: without cl, and when the check found its
// sub-filter full, which takes further round trips to settle (the caller
// then claims on its own). Only on a standalone server: the record is not
// in the partition's slot.
func (b *BloomNonce) addClaiming(ctx context.Context, e nonce.Entry, cl *claimCall) ([]any, error) {
	now := b.opts.now()
	if !e.Expires.After(now) {
		if err := ctx.Err(); err != nil {
			return nil, unavailable(nonce.ErrUnavailable, err)
		}
		return nil, nil
	}
	ts := e.Timestamp
	if ts.IsZero() {
		ts = now
	}
	data := []byte(layout.ScopedKey(e.Scope, e.Key))
	id := partID{bucket: bloomcore.BucketIndex(ts, b.opts.width), part: bloomcore.Partition(data, b.opts.partitions)}
	st := b.state(id, now)
	expMs := expiryGrid(layout.UnixMilliCeil(e.Expires), now)

	ctx, cancel := context.WithTimeout(ctx, b.opts.timeout)
	defer cancel()

	n := int(st.cur.Load())
	if n >= maxSubFilters || b.sub(n).m > maxBitmapBits {
		return nil, errBloomFull
	}
	locs := bloomcore.Locations(data, b.sub(n).k)
	present, count, claim, err := b.check(ctx, id, st, n, locs, expMs, cl)
	if err != nil {
		return nil, err
	}
	full := count > uint64(b.sub(n).capacity)
	if present {
		if full {
			b.advance(id, st, n+1)
		}
		return nil, nonce.ErrReplayed
	}
	if !full {
		return claim, nil
	}
	// Sub-filter n is full: move on, and make sure no instance that moved
	// earlier recorded the entry in a newer one.
	return nil, b.follow(ctx, id, st, n+1, data)
}

// check sets the entry's bits in sub-filter n, after testing sub-filters
// 0..n-1 in the same atomic step, and extends the expiry when needed. It
// returns whether the entry was present and sub-filter n's counter.
//
// With one sub-filter that is one BITFIELD (pipelined with PEXPIREAT when
// the expiry must grow). A grown partition runs BloomGrownScript, which
// writes nothing when an older sub-filter holds the entry: an instance that
// still writes into an older, full sub-filter and then reads the newer ones
// must find there only entries that were fresh. With cl, either is
// BloomClaimScript, which also claims cl's record and returns the claim's
// reply (nil when it made none).
func (b *BloomNonce) check(ctx context.Context, id partID, st *partState, n int, locs []uint64, expMs int64, cl *claimCall) (present bool, count uint64, claim []any, err error) {
	gen := b.gen.Load()
	expire := b.expiryNeeded(st, n, expMs, gen)
	switch {
	case cl != nil:
		present, count, claim, err = b.checkClaiming(ctx, id, st, n, locs, expire, expMs, cl)
		if err == nil && count > 0 && (expire || count == 1) {
			// The script extended the expiries when asked to, or when it
			// created the newest sub-filter.
			st.expired(n, expMs, gen)
		} else if err != nil {
			b.gen.Add(1)
		}
		return present, count, claim, err
	case n > 0:
		present, count, err = b.checkGrown(ctx, id, n, locs, expire, expMs)
	default:
		present, count, err = b.checkFirst(ctx, st.key0, locs, expire, expMs)
	}
	switch {
	case err != nil:
		// Redis may have restarted empty or failed over: set every expiry
		// again rather than trust what this instance set before.
		b.gen.Add(1)
	case expire && (n == 0 || count > 0):
		// (A grown check that found the entry in an older sub-filter
		// returns a zero counter and extended nothing.)
		st.expired(n, expMs, gen)
	case n == 0 && count == 1:
		// This check created the bitmap although this instance had set its
		// expiry before: Redis lost it (a restart without persistence, a
		// flush). Give the new bitmap its expiry now, once.
		if b.expire(ctx, []string{st.key0}, expMs) == nil {
			st.expired(0, expMs, gen)
		} else {
			b.gen.Add(1)
		}
	}
	return present, count, nil, err
}

// expire raises the expiry of keys to expMs (PEXPIREAT NX, then GT), in
// one round trip.
func (b *BloomNonce) expire(ctx context.Context, keys []string, expMs int64) error {
	cmds := make([]Cmd, 0, 2*len(keys))
	for _, k := range keys {
		cmds = append(cmds, expireCmds(k, expMs, false)...)
	}
	_, err := b.c.ProcessPipeline(ctx, cmds)
	return err
}

// expireCmds returns PEXPIREAT key expMs NX, then GT: the key's expiry
// set, or raised, to expMs.
func expireCmds(key string, expMs int64, once bool) []Cmd {
	return []Cmd{
		{Args: []any{"pexpireat", key, expMs, "nx"}, Once: once},
		{Args: []any{"pexpireat", key, expMs, "gt"}, Once: once},
	}
}

func (b *BloomNonce) checkFirst(ctx context.Context, key string, locs []uint64, expire bool, expMs int64) (bool, uint64, error) {
	g := b.sub(0)
	// Positions are passed by pointer into locs, which boxes them without
	// an allocation each.
	set := make([]any, 0, 2+4*g.k+6)
	set = append(set, "bitfield", key)
	for j := range locs[:g.k] {
		locs[j] %= uint64(g.m)
		set = append(set, "set", "u1", &locs[j], 1)
	}
	set = append(set, "overflow", "sat", "incrby", "u32", g.m, 1)
	setCmd := Cmd{Args: set, Once: true}
	var reply any
	var err error
	if !expire {
		reply, err = b.c.Process(ctx, setCmd)
	} else {
		var replies []any
		replies, err = b.c.ProcessPipeline(ctx, append([]Cmd{setCmd}, expireCmds(key, expMs, true)...))
		if err == nil {
			reply = replies[0]
		}
	}
	if err != nil {
		return false, 0, unavailable(nonce.ErrUnavailable, err)
	}
	v, err := int64s(reply)
	if err != nil {
		return false, 0, err
	}
	if len(v) != int(g.k)+1 {
		return false, 0, fmt.Errorf("%w: redis: BITFIELD reply of %d values", nonce.ErrUnavailable, len(v))
	}
	return allOnes(v[:g.k]), uint64(v[g.k]), nil
}

func (b *BloomNonce) checkGrown(ctx context.Context, id partID, n int, locs []uint64, expire bool, expMs int64) (bool, uint64, error) {
	keys := make([]string, n+1)
	args := make([]any, 0, 3+(n+1)*(1+len(locs)))
	force := 0
	if expire {
		force = 1
	}
	args = append(args, expMs, force, b.sub(n).m)
	for i := 0; i <= n; i++ {
		g := b.sub(i)
		keys[i] = b.key(id, i)
		args = append(args, g.k)
		for _, l := range locs[:g.k] {
			args = append(args, l%uint64(g.m))
		}
	}
	v, err := b.c.RunScript(ctx, bloomGrownScript, keys, Cmd{Args: args, Once: true})
	if err != nil {
		return false, 0, unavailable(nonce.ErrUnavailable, err)
	}
	r, ok := v.([]any)
	if !ok || len(r) != 2 {
		return false, 0, fmt.Errorf("%w: redis: unexpected script reply %v", nonce.ErrUnavailable, v)
	}
	present, _ := r[0].(int64)
	cnt, _ := r[1].(int64)
	return present == 1, uint64(cnt), nil
}

// checkClaiming runs BloomClaimScript over sub-filters 0..n and cl's
// record: check's step and the claim in one round trip. The script is sent
// once; when the call fails, the claim it may have made is released in the
// background (see claimCall.failed).
func (b *BloomNonce) checkClaiming(ctx context.Context, id partID, st *partState, n int, locs []uint64, expire bool, expMs int64, cl *claimCall) (bool, uint64, []any, error) {
	keys := make([]string, n+2)
	g := b.sub(n)
	force := 0
	if expire {
		force = 1
	}
	total := 0
	for i := 0; i <= n; i++ {
		total += int(b.sub(i).k)
	}
	// Positions are passed by pointer into pos, which boxes them without
	// an allocation each.
	pos := make([]uint64, 0, total)
	args := make([]any, 0, 7+(n+1)+total)
	args = append(args, &expMs, force, g.m, g.capacity, &cl.token, cl.fp, &cl.leaseMs)
	for i := 0; i <= n; i++ {
		gi := b.sub(i)
		if i == 0 {
			keys[i] = st.key0
		} else {
			keys[i] = b.key(id, i)
		}
		args = append(args, gi.k)
		for _, l := range locs[:gi.k] {
			pos = append(pos, l%uint64(gi.m))
			args = append(args, &pos[len(pos)-1])
		}
	}
	keys[n+1] = cl.record
	v, err := b.c.RunScript(ctx, bloomClaimScript, keys, Cmd{Args: args, Once: true, MaxReply: cl.maxReply})
	if err != nil {
		cl.failed()
		return false, 0, nil, unavailable(nonce.ErrUnavailable, err)
	}
	r, ok := v.([]any)
	if !ok || len(r) < 2 {
		return false, 0, nil, fmt.Errorf("%w: redis: unexpected script reply %v", nonce.ErrUnavailable, v)
	}
	present, ok1 := r[0].(int64)
	cnt, ok2 := r[1].(int64)
	if !ok1 || !ok2 {
		return false, 0, nil, fmt.Errorf("%w: redis: unexpected script reply %v", nonce.ErrUnavailable, v)
	}
	var claim []any
	if len(r) > 2 {
		claim = r[2:]
	}
	return present == 1, uint64(cnt), claim, nil
}

// getCmd returns BITFIELD_RO reading the entry's bits in sub-filter i, and
// its counter when withCount.
func (b *BloomNonce) getCmd(id partID, i int, locs []uint64, withCount bool) Cmd {
	g := b.sub(i)
	a := make([]any, 0, 2+3*g.k+3)
	a = append(a, "bitfield_ro", b.key(id, i))
	for _, l := range locs[:g.k] {
		a = append(a, "get", "u1", l%uint64(g.m))
	}
	if withCount {
		a = append(a, "get", "u32", g.m)
	}
	return Cmd{Args: a}
}

// follow reads sub-filters from i on until one is not full, reporting a
// replay if any holds the entry. It is the slow path after a check found
// its sub-filter full; each step is one round trip.
func (b *BloomNonce) follow(ctx context.Context, id partID, st *partState, i int, data []byte) error {
	for ; i < maxSubFilters && b.sub(i).m <= maxBitmapBits; i++ {
		b.advance(id, st, i)
		g := b.sub(i)
		reply, err := b.c.Process(ctx, b.getCmd(id, i, bloomcore.Locations(data, g.k), true))
		if err != nil {
			return unavailable(nonce.ErrUnavailable, err)
		}
		vals, err := int64s(reply)
		if err != nil {
			return err
		}
		if len(vals) != int(g.k)+1 {
			return fmt.Errorf("%w: redis: BITFIELD_RO reply of %d values", nonce.ErrUnavailable, len(vals))
		}
		bits, count := vals[:len(vals)-1], uint64(vals[len(vals)-1])
		if allOnes(bits) {
			return nonce.ErrReplayed
		}
		if count <= uint64(g.capacity) {
			return nil
		}
	}
	return errBloomFull
}

// expiryGrid rounds an expiry up to a grid of an eighth of the time left,
// between 1 ms and 1 s, so that the entries of a bucket, whose expiries
// differ by milliseconds, share a few values and the bitmap's expiry is
// raised a few times per partition and second, not on every check. A key
// lives at most that much longer than its latest entry.
func expiryGrid(expMs int64, now time.Time) int64 {
	g := (expMs - now.UnixMilli()) / 8
	if g < 1 {
		g = 1
	}
	if g > 1000 {
		g = 1000
	}
	if r := expMs % g; r != 0 {
		expMs += g - r
	}
	return expMs
}

// expiryNeeded reports whether sub-filters 0..n need their expiry raised to
// expMs.
func (b *BloomNonce) expiryNeeded(st *partState, n int, expMs int64, gen uint64) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.gen != gen || expMs > st.expireMs || n >= st.expSubs
}

// expired records that sub-filters 0..n expire no earlier than expMs, as
// set in error generation gen.
func (st *partState) expired(n int, expMs int64, gen uint64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.gen != gen {
		st.gen, st.expireMs, st.expSubs = gen, 0, 0
	}
	switch {
	case expMs > st.expireMs:
		st.expireMs, st.expSubs = expMs, n+1
	case expMs == st.expireMs && n+1 > st.expSubs:
		st.expSubs = n + 1
	}
}

// advance moves the newest known sub-filter of partition id to at least
// i, reporting to the growth hook when this instance learns of a newer
// one.
func (b *BloomNonce) advance(id partID, st *partState, i int) {
	for {
		cur := st.cur.Load()
		if int(cur) >= i {
			return
		}
		if st.cur.CompareAndSwap(cur, int32(i)) {
			if b.opts.onGrowth != nil {
				b.opts.onGrowth(bloomcore.Growth{Bucket: time.Unix(0, id.bucket*int64(b.opts.width)).UTC(), Partition: id.part, SubFilters: i + 1})
			}
			return
		}
	}
}

// state returns the partition's state, creating it, and now and then drops
// those of buckets whose keys have expired.
func (b *BloomNonce) state(id partID, now time.Time) *partState {
	nowMs := now.UnixMilli()
	if nowMs < b.nextPrune.Load() {
		b.mu.RLock()
		st := b.parts[id]
		b.mu.RUnlock()
		if st != nil {
			st.lastUse.Store(nowMs)
			return st
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if next := b.nextPrune.Load(); nowMs >= next {
		b.nextPrune.Store(nowMs + b.opts.width.Milliseconds())
		for k, st := range b.parts {
			st.mu.Lock()
			gone := st.expireMs < nowMs && st.lastUse.Load() < nowMs-b.opts.width.Milliseconds()
			st.mu.Unlock()
			if gone {
				delete(b.parts, k)
			}
		}
	}
	st := b.parts[id]
	if st == nil {
		st = &partState{key0: b.key(id, 0)}
		b.parts[id] = st
	}
	st.lastUse.Store(nowMs)
	return st
}

// Ping reports whether Redis answers within the timeout.
func (b *BloomNonce) Ping(ctx context.Context) error {
	return ping(ctx, b.c, b.opts.timeout, nonce.ErrUnavailable)
}

// Stats reads, for the buckets this instance has checked entries in and
// that have not expired, the fill of every sub-filter it knows of
// (BITCOUNT and the counter of each bitmap, one pipelined round trip per
// partition), for metrics. FalsePositiveRate is the estimate for a fresh
// entry: per partition the sum over its sub-filters of fill^k, averaged
// over all partitions.
func (b *BloomNonce) Stats(ctx context.Context) ([]bloomcore.BucketStats, error) {
	type item struct {
		id partID
		n  int
	}
	b.mu.RLock()
	items := make([]item, 0, len(b.parts))
	for id, st := range b.parts {
		items = append(items, item{id, int(st.cur.Load())})
	}
	b.mu.RUnlock()

	byBucket := map[int64]*bloomcore.BucketStats{}
	fp := map[int64]float64{}
	for _, it := range items {
		cmds := make([]Cmd, 0, 3*(it.n+1))
		for i := 0; i <= it.n; i++ {
			g := b.sub(i)
			k := b.key(it.id, i)
			cmds = append(cmds,
				Cmd{Args: []any{"bitcount", k, 0, int64(g.m/8) - 1}},
				Cmd{Args: []any{"pttl", k}},
				Cmd{Args: []any{"bitfield_ro", k, "get", "u32", g.m}})
		}
		cctx, cancel := context.WithTimeout(ctx, b.opts.timeout)
		replies, err := b.c.ProcessPipeline(cctx, cmds)
		cancel()
		if err != nil {
			return nil, unavailable(nonce.ErrUnavailable, err)
		}
		s := byBucket[it.id.bucket]
		if s == nil {
			s = &bloomcore.BucketStats{Start: time.Unix(0, it.id.bucket*int64(b.opts.width)).UTC()}
			byBucket[it.id.bucket] = s
		}
		for i := 0; i <= it.n; i++ {
			set, _ := replies[3*i].(int64)
			ttl, _ := replies[3*i+1].(int64)
			if ttl == -2 {
				continue // known to this instance, not created yet
			}
			g := b.sub(i)
			if ctr, _ := int64s(replies[3*i+2]); len(ctr) == 1 {
				s.Entries += uint64(ctr[0])
			}
			s.BitsSet += uint64(set)
			s.Bits += uint64(g.m)
			s.Capacity += uint64(g.capacity)
			s.SubFilters++
			if ttl > 0 {
				if exp := b.opts.now().Add(time.Duration(ttl) * time.Millisecond).UTC(); exp.After(s.Expires) {
					s.Expires = exp
				}
			}
			fp[it.id.bucket] += math.Pow(float64(set)/float64(g.m), float64(g.k))
		}
	}
	out := make([]bloomcore.BucketStats, 0, len(byBucket))
	for idx, s := range byBucket {
		if s.Bits > 0 {
			s.FillRatio = float64(s.BitsSet) / float64(s.Bits)
		}
		s.FalsePositiveRate = fp[idx] / float64(b.opts.partitions)
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out, nil
}

// int64s decodes a BITFIELD reply: an array of integers (nil for a null
// reply).
func int64s(reply any) ([]int64, error) {
	if reply == nil {
		return nil, nil
	}
	raw, ok := reply.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: redis: unexpected BITFIELD reply %T", nonce.ErrUnavailable, reply)
	}
	out := make([]int64, len(raw))
	for i, r := range raw {
		n, ok := r.(int64)
		if !ok {
			return nil, fmt.Errorf("%w: redis: unexpected BITFIELD element %T", nonce.ErrUnavailable, r)
		}
		out[i] = n
	}
	return out, nil
}

// allOnes reports whether every bit is set (and there is at least one).
func allOnes(bits []int64) bool {
	if len(bits) == 0 {
		return false
	}
	for _, v := range bits {
		if v == 0 {
			return false
		}
	}
	return true
}
