package idempotency

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMemoryMaxBytes bounds what Memory keeps. What a record costs is
// counted as the heap it really takes (see WithMemoryMaxBytes).
const DefaultMemoryMaxBytes = 256 << 20

// What a record costs the heap beside its key and its data, each part
// counted at the upper end of its range, so that the bound holds at any
// point of the maps' and slices' growth (measured with runtime/metrics'
// /gc/heap/live:bytes; see TestMemoryCountsTheHeapItHolds):
//   - recordBytes: the memRecord (96 bytes); its slot in the shard's map,
//     a 24-byte slot of a Swiss table between 7/16 and 7/8 full, 27 to 59
//     bytes an entry with the control bytes and the tables' allocation
//     rounded up; its 16-byte item in the shard's expiry heap, in a slice
//     at most twice as long as its items (up to 32).
//   - ownedBytes: its item in its owner's expiry heap, when it has one.
//
// Once records expire, a map keeps the slots of its peak until a quarter
// of it is gone and is then made anew (see memShard.peak): until then the
// records left may hold up to a third more map than they count.
const (
	recordBytes = 96 + 60 + 32
	ownedBytes  = 32
)

// Memory is the embedded store: bounded, reclaiming expired records, safe
// for concurrent use and sharded.
//
// A completed record keeps its response encoded in one string (status,
// headers, body), so that a record is three allocations whatever its
// headers (the record, its key and that string) besides its share of the
// shard's map and expiry heaps. A replay decodes it into a new Response.
type Memory struct {
	shards   []memShard
	seed     maphash.Seed
	now      func() time.Time
	maxBytes int64
	bytes    atomic.Int64

	// keyShare bounds the bytes of one owner's records; 0: no bound
	// beyond maxBytes.
	keyShare int64
	ownersMu sync.Mutex
	owners   map[string]*memOwner
}

var (
	_ Store        = (*Memory)(nil)
	_ OwnerClaimer = (*Memory)(nil)
)

// memOwner is one owner's account.
type memOwner struct {
	bytes atomic.Int64
}

type memShard struct {
	mu      sync.Mutex
	records map[string]*memRecord
	// peak is the most records the map has held since it was made: a map
	// never gives back its slots, so once a quarter of them are empty the
	// map is made anew.
	peak int
	// expiry orders the records by deadline, each at its rec.idx.
	expiry expiryHeap
	// owned holds each owner's records of this shard the same way, each at
	// its rec.ownedIdx, so that its earliest deadline is found without a
	// scan.
	owned map[*memOwner]*expiryHeap
}

// memRecord is one record. data is the fencing token while the record is
// in progress, and the encoded response (see encodeResponse) once it is
// completed.
type memRecord struct {
	key      string
	fp       Fingerprint
	data     string
	deadline int64     // unix ns: the lease's end while in progress, else the expiry
	owner    *memOwner // nil: charged to nobody
	idx      int32     // in memShard.expiry
	ownedIdx int32     // in memShard.owned[owner]
	state    State
}

// recordSize returns what r costs, as charged to the store and to its
// owner.
func recordSize(r *memRecord) int64 {
	n := int64(recordBytes + allocSize(len(r.key)) + allocSize(len(r.data)))
	if r.owner != nil {
		n += ownedBytes
	}
	return n
}

// MemoryOption configures Memory.
type MemoryOption func(*Memory)

// WithMemoryClock sets the clock. Default time.Now.
func WithMemoryClock(now func() time.Time) MemoryOption {
	return func(m *Memory) { m.now = now }
}

// WithMemoryMaxBytes bounds the live heap the records hold, each counted
// as what it takes (Bytes): its key and encoded response as the allocator
// rounds them, its record, map slot and expiry items at the most they take.
// A Claim that would pass the bound fails with ErrUnavailable (never
// evicting a live record), and so does a Complete whose response would.
// Default DefaultMemoryMaxBytes; 0 or less means no bound.
func WithMemoryMaxBytes(n int64) MemoryOption {
	return func(m *Memory) { m.maxBytes = n }
}

// WithMemoryKeyShare bounds the bytes one owner's records may hold (see
// OwnerClaimer), so that one key cannot fill the store for every other:
// past it, that owner's new claims, and completions that would grow its
// records past it, fail with a *QuotaError (wrapping ErrQuotaExceeded)
// saying when its earliest record expires, while other owners go on.
// Records claimed with Claim rather than ClaimFor are bounded by
// WithMemoryMaxBytes alone. Default 0: no per-owner bound.
func WithMemoryKeyShare(n int64) MemoryOption {
	return func(m *Memory) { m.keyShare = n }
}

// NewMemory returns an empty store.
func NewMemory(opts ...MemoryOption) *Memory {
	m := &Memory{now: time.Now, seed: maphash.MakeSeed(), maxBytes: DefaultMemoryMaxBytes, shards: make([]memShard, 32),
		owners: map[string]*memOwner{}}
	for _, o := range opts {
		o(m)
	}
	for i := range m.shards {
		m.shards[i].records = make(map[string]*memRecord)
		m.shards[i].owned = make(map[*memOwner]*expiryHeap)
	}
	return m
}

// ownerOf returns the account of name, made on first use. Shares must be
// on and name not empty.
func ownerOf(m *Memory, name string) *memOwner {
	m.ownersMu.Lock()
	o := m.owners[name]
	if o == nil {
		o = &memOwner{}
		m.owners[name] = o
	}
	m.ownersMu.Unlock()
	return o
}

// earliest returns how long until owner o's earliest live record expires;
// 0 when it holds none any more. It reclaims every shard on the way, and
// must be called with no shard lock held.
func (m *Memory) earliest(o *memOwner, now int64) time.Duration {
	first := int64(0)
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		reclaim(m, sh, now)
		if h := sh.owned[o]; h != nil && len(h.items) > 0 {
			if at := h.items[0].at; first == 0 || at < first {
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

func shardOf(m *Memory, key string) *memShard {
	return &m.shards[maphash.String(m.seed, key)&uint64(len(m.shards)-1)]
}

// Claim implements Store. The record is charged to nobody.
func (m *Memory) Claim(ctx context.Context, key string, fp Fingerprint, lease time.Duration) (Claim, error) {
	return m.ClaimFor(ctx, "", key, fp, lease)
}

// ClaimFor implements OwnerClaimer.
//
// ClaimFor, Complete and what they run on every call are functions
// rather than methods, without defers, with the rarer paths in functions
// of their own: under the Yaegi interpreter (the Traefik plugin loads this
// package) a method call of an interpreted type builds a reflect.MakeFunc
// wrapper each time, a defer costs as much, and every call allocates each
// value its callee's body could hold, whichever branch runs.
func (m *Memory) ClaimFor(ctx context.Context, owner, key string, fp Fingerprint, lease time.Duration) (Claim, error) {
	if ctx.Err() != nil {
		return Claim{}, unavailable(ctx)
	}
	var o *memOwner
	if m.keyShare > 0 && owner != "" {
		o = ownerOf(m, owner)
	}
	now := m.now().UnixNano()
	sh := shardOf(m, key)
	sh.mu.Lock()
	c, over, err := claimIn(m, sh, o, key, fp, lease, now)
	sh.mu.Unlock()
	if over {
		return claimOverShare(m, sh, o, key, fp, lease, now)
	}
	return c, err
}

// unavailable is the error of a call whose ctx is done.
func unavailable(ctx context.Context) error {
	return fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
}

// claimOverShare is ClaimFor after owner o was found over its share:
// records of other shards may have expired unreclaimed, so earliest
// reclaims them all; then the claim is tried once more.
func claimOverShare(m *Memory, sh *memShard, o *memOwner, key string, fp Fingerprint, lease time.Duration, now int64) (Claim, error) {
	wait := m.earliest(o, now)
	sh.mu.Lock()
	c, over, err := claimIn(m, sh, o, key, fp, lease, now)
	sh.mu.Unlock()
	if over {
		return Claim{}, NewQuotaError(wait)
	}
	return c, err
}

// claimIn is ClaimFor with sh.mu held.
func claimIn(m *Memory, sh *memShard, o *memOwner, key string, fp Fingerprint, lease time.Duration, now int64) (c Claim, over bool, err error) {
	// reclaim's work, expired records or a map to make anew, looked for
	// in place.
	if len(sh.expiry.items) > 0 && sh.expiry.items[0].at <= now || sh.peak > 64 && len(sh.records) < sh.peak-sh.peak/4 {
		reclaim(m, sh, now)
	}
	if r, ok := sh.records[key]; ok {
		if r.deadline > now {
			return Claim{Existing: r.snapshot()}, false, nil
		}
		// Expired, or a lease whose holder died: taken over.
		drop(m, sh, r)
	}
	token := NewToken()
	// The key is copied so that the record holds exactly its bytes, never
	// a larger string the caller cut it from.
	r := &memRecord{key: strings.Clone(key), fp: fp, data: token, deadline: after(now, lease), owner: o, state: StateInProgress}
	size := recordSize(r)
	if o != nil && o.bytes.Load()+size > m.keyShare {
		return Claim{}, true, nil
	}
	if m.maxBytes > 0 && m.bytes.Load()+size > m.maxBytes {
		return Claim{}, false, full(m)
	}
	insert(m, sh, r, size)
	return Claim{Acquired: true, Token: token}, false, nil
}

// full is the error of a store whose bound a record would pass.
func full(m *Memory) error {
	return fmt.Errorf("%w: memory store full (%d bytes)", ErrUnavailable, m.maxBytes)
}

// insert adds r, of size bytes, to the shard and its heaps. Called with
// sh.mu held.
func insert(m *Memory, sh *memShard, r *memRecord, size int64) {
	sh.records[r.key] = r
	if len(sh.records) > sh.peak {
		sh.peak = len(sh.records)
	}
	m.bytes.Add(size) // charge, spelled out on this path
	if r.owner != nil {
		r.owner.bytes.Add(size)
	}
	heapPush(&sh.expiry, r)
	if r.owner != nil {
		h := sh.owned[r.owner]
		if h == nil {
			h = &expiryHeap{owned: true}
			sh.owned[r.owner] = h
		}
		heapPush(h, r)
	}
}

// charge adds n bytes to the store's count and to r's owner's.
func charge(m *Memory, r *memRecord, n int64) {
	m.bytes.Add(n)
	if r.owner != nil {
		r.owner.bytes.Add(n)
	}
}

// holder returns the in-progress record key held by token. Fencing is by
// token: a holder whose lease ran out may still finish as long as nobody
// took the record over and it was not reclaimed.
func holder(sh *memShard, key, token string) (*memRecord, error) {
	r, ok := sh.records[key]
	if !ok || r.state != StateInProgress || r.data != token {
		return nil, ErrLeaseLost
	}
	return r, nil
}

// reschedule moves r to its deadline in the shard's expiry heaps. A
// record whose deadline moved later can only sift down.
func reschedule(sh *memShard, r *memRecord) {
	if r.deadline < sh.expiry.items[r.idx].at {
		rescheduleEarlier(sh, r)
		return
	}
	sh.expiry.items[r.idx].at = r.deadline
	heapDown(&sh.expiry, int(r.idx))
	if r.owner != nil {
		if h := sh.owned[r.owner]; h != nil {
			h.items[r.ownedIdx].at = r.deadline
			heapDown(h, int(r.ownedIdx))
		}
	}
}

// rescheduleEarlier is reschedule for a record whose deadline moved
// earlier.
func rescheduleEarlier(sh *memShard, r *memRecord) {
	heapFix(&sh.expiry, int(r.idx))
	if r.owner != nil {
		if h := sh.owned[r.owner]; h != nil {
			heapFix(h, int(r.ownedIdx))
		}
	}
}

// Renew implements Store.
func (m *Memory) Renew(ctx context.Context, key, token string, lease time.Duration) error {
	if ctx.Err() != nil {
		return unavailable(ctx)
	}
	now := m.now().UnixNano()
	sh := shardOf(m, key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, err := holder(sh, key, token)
	if err != nil {
		return err
	}
	if until := after(now, lease); until > r.deadline {
		r.deadline = until
		reschedule(sh, r)
	}
	return nil
}

// Complete implements Store. A response that would take the record's
// owner past its share is not stored: Complete fails with a *QuotaError and
// the record stays in progress until its lease ends, as it does when the
// store is full.
func (m *Memory) Complete(ctx context.Context, key, token string, resp *Response, ttl time.Duration) error {
	if ctx.Err() != nil {
		return unavailable(ctx)
	}
	data := encodeResponse(resp)
	now := m.now().UnixNano()
	sh := shardOf(m, key)
	sh.mu.Lock()
	o, err := complete(m, sh, key, token, data, ttl, now)
	sh.mu.Unlock()
	if o != nil {
		return NewQuotaError(m.earliest(o, now))
	}
	return err
}

// complete is Complete with sh.mu held; over is the owner whose share the
// response would pass.
func complete(m *Memory, sh *memShard, key, token, data string, ttl time.Duration, now int64) (over *memOwner, err error) {
	r, err := holder(sh, key, token)
	if err != nil {
		return nil, err
	}
	grow := int64(allocSize(len(data)) - allocSize(len(r.data)))
	if o := r.owner; o != nil && grow > 0 && o.bytes.Load()+grow > m.keyShare {
		return o, nil
	}
	if m.maxBytes > 0 && grow > 0 && m.bytes.Load()+grow > m.maxBytes {
		return nil, full(m)
	}
	charge(m, r, grow)
	r.data = data
	r.state = StateCompleted
	r.deadline = after(now, ttl)
	reschedule(sh, r)
	return nil, nil
}

// Release implements Store.
func (m *Memory) Release(ctx context.Context, key, token string) error {
	if ctx.Err() != nil {
		return unavailable(ctx)
	}
	sh := shardOf(m, key)
	sh.mu.Lock()
	r, err := holder(sh, key, token)
	if err == nil {
		drop(m, sh, r)
	}
	sh.mu.Unlock()
	return err
}

// Ping reports the in-process store healthy.
func (m *Memory) Ping(context.Context) error { return nil }

// Bytes returns the heap counted against the bound: what the live records
// cost (see WithMemoryMaxBytes).
func (m *Memory) Bytes() int64 { return m.bytes.Load() }

// Len returns the number of records held (live or awaiting reclaim).
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n += len(sh.records)
		sh.mu.Unlock()
	}
	return n
}

// Sweep reclaims every expired record now.
func (m *Memory) Sweep() {
	now := m.now().UnixNano()
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		reclaim(m, sh, now)
		sh.mu.Unlock()
	}
}

// drop removes r, the current record of its key, from the shard. Called
// with sh.mu held.
func drop(m *Memory, sh *memShard, r *memRecord) {
	delete(sh.records, r.key)
	heapRemove(&sh.expiry, int(r.idx))
	if r.owner != nil {
		if h := sh.owned[r.owner]; h != nil {
			heapRemove(h, int(r.ownedIdx))
			if len(h.items) == 0 {
				delete(sh.owned, r.owner)
			}
		}
	}
	charge(m, r, -recordSize(r))
}

// reclaim drops expired records. Called with sh.mu held.
func reclaim(m *Memory, sh *memShard, now int64) {
	for len(sh.expiry.items) > 0 && sh.expiry.items[0].at <= now {
		drop(m, sh, sh.expiry.items[0].rec)
	}
	if n := len(sh.records); sh.peak > 64 && n < sh.peak-sh.peak/4 {
		// A map keeps the slots of its peak: copy what is left into one
		// sized for it.
		records := make(map[string]*memRecord, n)
		for k, r := range sh.records {
			records[k] = r
		}
		sh.records, sh.peak = records, n
	}
}

// snapshot returns the record as callers see it, with a response of its
// own.
func (r *memRecord) snapshot() *Record {
	rec := &Record{State: r.state, Fingerprint: r.fp}
	if r.state == StateCompleted {
		rec.Response = decodeResponse(r.data)
	}
	return rec
}

// encodeResponse encodes resp in one string: its status, the number of
// header names, each name with its values, each length-prefixed (unsigned
// varints), then the body. A nil resp encodes as an empty response.
//
// Everything but the body is appended to a pooled scratch first, so that
// the string is allocated once at its exact size without a pass to size
// it: under the Yaegi interpreter (the Traefik plugin) each call, and each
// write to a strings.Builder, costs more than appending.
func encodeResponse(resp *Response) string {
	if resp == nil {
		resp = &Response{}
	}
	sc := encodeScratch.Get().(*[]byte)
	p := binary.AppendUvarint((*sc)[:0], uint64(resp.Status))
	p = binary.AppendUvarint(p, uint64(len(resp.Header)))
	for k, vs := range resp.Header {
		p = binary.AppendUvarint(p, uint64(len(k)))
		p = append(p, k...)
		p = binary.AppendUvarint(p, uint64(len(vs)))
		for _, v := range vs {
			p = binary.AppendUvarint(p, uint64(len(v)))
			p = append(p, v...)
		}
	}
	var b strings.Builder
	b.Grow(len(p) + len(resp.Body))
	b.Write(p)
	b.Write(resp.Body)
	if cap(p) <= maxEncodeScratch {
		*sc = p
	}
	encodeScratch.Put(sc)
	return b.String()
}

// maxEncodeScratch bounds the scratch encodeResponse keeps.
const maxEncodeScratch = 4 << 10

var encodeScratch = sync.Pool{New: func() any {
	b := make([]byte, 0, 512)
	return &b
}}

// decodeResponse returns the response encodeResponse encoded in s. Its
// header strings share s; its body is a copy.
func decodeResponse(s string) *Response {
	d := decoder{s: s}
	resp := &Response{Status: int(d.uvarint())}
	names := int(d.uvarint())
	resp.Header = make(http.Header, names)
	for i := 0; i < names; i++ {
		k := d.string()
		vs := make([]string, int(d.uvarint()))
		for j := range vs {
			vs[j] = d.string()
		}
		resp.Header[k] = vs
	}
	if d.off < len(s) {
		resp.Body = []byte(s[d.off:])
	}
	return resp
}

type decoder struct {
	s   string
	off int
}

func (d *decoder) uvarint() uint64 {
	var x uint64
	for shift := uint(0); d.off < len(d.s); shift += 7 {
		c := d.s[d.off]
		d.off++
		x |= uint64(c&0x7f) << shift
		if c < 0x80 {
			break
		}
	}
	return x
}

func (d *decoder) string() string {
	n := int(d.uvarint())
	v := d.s[d.off : d.off+n]
	d.off += n
	return v
}

// sizeClasses are the Go allocator's size classes up to 32 KiB: an object
// of n bytes takes the first class of at least n.
var sizeClasses = [...]int{
	8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256,
	288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280,
	1408, 1536, 1792, 2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528,
	6784, 6912, 8192, 9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072,
	20480, 21760, 24576, 27264, 28672, 32768,
}

// allocSize returns the heap an allocation of n bytes takes: its size
// class, or whole 8 KiB pages past 32 KiB. Up to 1 KiB, where every class
// is a multiple of 8 bytes, it is looked up without a search.
func allocSize(n int) int {
	if n <= smallAllocMax {
		return int(smallAllocSizes[(n+7)>>3])
	}
	return searchAllocSize(n)
}

// smallAllocMax is the largest size smallAllocSizes holds.
const smallAllocMax = 1024

// smallAllocSizes[(n+7)/8] is allocSize(n) for n up to smallAllocMax.
var smallAllocSizes = smallAllocTable()

func smallAllocTable() (t [smallAllocMax/8 + 1]int32) {
	for i := range t {
		t[i] = int32(searchAllocSize(8 * i))
	}
	return t
}

// searchAllocSize is allocSize by a binary search of the size classes.
func searchAllocSize(n int) int {
	if n == 0 {
		return 0
	}
	if n > sizeClasses[len(sizeClasses)-1] {
		return (n + 8191) &^ 8191
	}
	lo, hi := 0, len(sizeClasses)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if sizeClasses[mid] < n {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return sizeClasses[lo]
}

type expiryItem struct {
	at  int64
	rec *memRecord
}

// expiryHeap is a min-heap of records on their deadline that keeps each
// record's place in it (rec.idx, or rec.ownedIdx in an owner's heap), so
// that a record is moved or removed without a search and no stale item
// outlives it.
type expiryHeap struct {
	items []expiryItem
	owned bool
}

func heapSet(h *expiryHeap, i int, it expiryItem) {
	h.items[i] = it
	if h.owned {
		it.rec.ownedIdx = int32(i)
	} else {
		it.rec.idx = int32(i)
	}
}

func heapPush(h *expiryHeap, r *memRecord) {
	i := len(h.items)
	h.items = append(h.items, expiryItem{at: r.deadline, rec: r})
	if h.owned {
		r.ownedIdx = int32(i)
	} else {
		r.idx = int32(i)
	}
	// Records mostly arrive in deadline order: no sift then.
	if i > 0 && h.items[(i-1)/2].at > r.deadline {
		heapUp(h, i)
	}
}

// heapFix moves the item at i to its record's deadline.
func heapFix(h *expiryHeap, i int) {
	h.items[i].at = h.items[i].rec.deadline
	if !heapDown(h, i) {
		heapUp(h, i)
	}
}

func heapRemove(h *expiryHeap, i int) {
	last := len(h.items) - 1
	if i != last {
		heapSet(h, i, h.items[last])
	}
	h.items[last] = expiryItem{}
	h.items = h.items[:last]
	if i != last {
		heapFix(h, i)
	}
	if c := cap(h.items); c > 64 && len(h.items) < c/2 {
		// Give back what a burst left: at most twice the items stay.
		h.items = append(make([]expiryItem, 0, len(h.items)+len(h.items)/4), h.items...)
	}
}

func heapUp(h *expiryHeap, i int) {
	s := h.items
	for i > 0 {
		p := (i - 1) / 2
		if s[p].at <= s[i].at {
			break
		}
		a, b := s[i], s[p]
		heapSet(h, p, a)
		heapSet(h, i, b)
		i = p
	}
}

// heapDown sifts the item at i down; it reports whether it moved.
func heapDown(h *expiryHeap, i int) bool {
	s := h.items
	start := i
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
		a, b := s[i], s[c]
		heapSet(h, c, a)
		heapSet(h, i, b)
		i = c
	}
	return i > start
}
