package idempotency

import (
	"context"
	"fmt"
	"hash/maphash"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMemoryMaxBytes bounds what Memory keeps: stored bodies and headers
// plus a fixed overhead per record.
const DefaultMemoryMaxBytes = 256 << 20

// recordOverhead approximates a record's bookkeeping in bytes.
const recordOverhead = 160

// Memory is the embedded store: bounded, reclaiming expired records, safe
// for concurrent use and sharded.
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
	expiry  expiryHeap
	// owned holds each owner's expiry items of this shard, so that its
	// earliest expiry is found without a scan; items go stale as their
	// records do, and are dropped with them.
	owned map[*memOwner]*expiryHeap
}

type memRecord struct {
	state      State
	fp         Fingerprint
	token      string
	leaseUntil int64 // unix ns, in progress only
	expires    int64 // unix ns
	resp       *Response
	size       int64
	owner      *memOwner // nil: charged to nobody
}

// MemoryOption configures Memory.
type MemoryOption func(*Memory)

// WithMemoryClock sets the clock. Default time.Now.
func WithMemoryClock(now func() time.Time) MemoryOption {
	return func(m *Memory) { m.now = now }
}

// WithMemoryMaxBytes bounds the memory held; a Claim that would pass it
// fails with ErrUnavailable (never evicting a live record). Default
// DefaultMemoryMaxBytes; 0 or less means no bound.
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

// owner returns the account of name, nil when shares are off.
func (m *Memory) owner(name string) *memOwner {
	if m.keyShare <= 0 || name == "" {
		return nil
	}
	m.ownersMu.Lock()
	defer m.ownersMu.Unlock()
	o := m.owners[name]
	if o == nil {
		o = &memOwner{}
		m.owners[name] = o
	}
	return o
}

// push schedules r's expiry at it.at. Called with sh.mu held.
func (sh *memShard) push(it expiryItem) {
	sh.expiry.push(it)
	if o := it.rec.owner; o != nil {
		h := sh.owned[o]
		if h == nil {
			h = &expiryHeap{}
			sh.owned[o] = h
		}
		h.push(it)
	}
}

// earliest returns how long until owner o's earliest live record expires;
// 0 when it holds none any more. It reclaims every shard on the way, and
// must be called with no shard lock held.
func (m *Memory) earliest(o *memOwner, now int64) time.Duration {
	first := int64(0)
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		m.reclaim(sh, now)
		if h := sh.owned[o]; h != nil {
			for len(*h) > 0 {
				it := (*h)[0]
				if cur, ok := sh.records[it.key]; ok && cur == it.rec && it.rec.expires == it.at {
					if first == 0 || it.at < first {
						first = it.at
					}
					break
				}
				h.pop() // stale: renewed, completed or dropped since
			}
		}
		sh.mu.Unlock()
	}
	if first == 0 {
		return 0
	}
	return time.Duration(first - now)
}

func (m *Memory) shard(key string) *memShard {
	return &m.shards[maphash.String(m.seed, key)&uint64(len(m.shards)-1)]
}

// Claim implements Store. The record is charged to nobody.
func (m *Memory) Claim(ctx context.Context, key string, fp Fingerprint, lease time.Duration) (Claim, error) {
	return m.ClaimFor(ctx, "", key, fp, lease)
}

// ClaimFor implements OwnerClaimer.
func (m *Memory) ClaimFor(ctx context.Context, owner, key string, fp Fingerprint, lease time.Duration) (Claim, error) {
	if err := ctx.Err(); err != nil {
		return Claim{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	o := m.owner(owner)
	now := m.now().UnixNano()
	sh := m.shard(key)
	c, over, err := m.claim(sh, o, key, fp, lease, now)
	if !over {
		return c, err
	}
	// Records of other shards may have expired unreclaimed: earliest
	// reclaims them all; then try once more.
	wait := m.earliest(o, now)
	if c, over, err = m.claim(sh, o, key, fp, lease, now); over {
		return Claim{}, NewQuotaError(wait)
	}
	return c, err
}

func (m *Memory) claim(sh *memShard, o *memOwner, key string, fp Fingerprint, lease time.Duration, now int64) (c Claim, over bool, err error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	m.reclaim(sh, now)
	if r, ok := sh.records[key]; ok && r.expires > now {
		takeover := r.state == StateInProgress && r.leaseUntil <= now
		if !takeover {
			return Claim{Existing: r.snapshot()}, false, nil
		}
		m.drop(sh, key, r)
	} else if ok {
		m.drop(sh, key, r)
	}
	size := int64(recordOverhead + len(key))
	if o != nil && o.bytes.Load()+size > m.keyShare {
		return Claim{}, true, nil
	}
	if m.maxBytes > 0 && m.bytes.Load()+size > m.maxBytes {
		return Claim{}, false, fmt.Errorf("%w: memory store full (%d bytes)", ErrUnavailable, m.maxBytes)
	}
	exp := after(now, lease)
	r := &memRecord{state: StateInProgress, fp: fp, token: NewToken(), leaseUntil: exp, expires: exp, size: size, owner: o}
	sh.records[key] = r
	m.bytes.Add(size)
	if o != nil {
		o.bytes.Add(size)
	}
	sh.push(expiryItem{at: exp, key: key, rec: r})
	return Claim{Acquired: true, Token: r.token}, false, nil
}

// holder returns the live in-progress record key held by token.
func (m *Memory) holder(sh *memShard, key, token string, now int64) (*memRecord, error) {
	r, ok := sh.records[key]
	// Fencing is by token: a holder whose lease ran out may still finish
	// as long as nobody took the record over.
	if !ok || r.token != token || r.state != StateInProgress {
		return nil, ErrLeaseLost
	}
	_ = now
	return r, nil
}

// Renew implements Store.
func (m *Memory) Renew(ctx context.Context, key, token string, lease time.Duration) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	now := m.now().UnixNano()
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, err := m.holder(sh, key, token, now)
	if err != nil {
		return err
	}
	r.leaseUntil = after(now, lease)
	if r.leaseUntil > r.expires {
		r.expires = r.leaseUntil
		sh.push(expiryItem{at: r.expires, key: key, rec: r})
	}
	return nil
}

// Complete implements Store. A response that would take the record's
// owner past its share is not stored: Complete fails with a *QuotaError and
// the record stays in progress until its lease ends, as it does when the
// store is full.
func (m *Memory) Complete(ctx context.Context, key, token string, resp *Response, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	stored := copyResponse(resp)
	size := int64(recordOverhead+len(key)+len(stored.Body)) + headerSize(stored.Header)
	now := m.now().UnixNano()
	sh := m.shard(key)
	o, err := m.complete(sh, key, token, stored, size, ttl, now)
	if o != nil {
		return NewQuotaError(m.earliest(o, now))
	}
	return err
}

// complete is Complete under the shard's lock; over is the owner whose
// share the response would pass.
func (m *Memory) complete(sh *memShard, key, token string, stored *Response, size int64, ttl time.Duration, now int64) (over *memOwner, err error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, err := m.holder(sh, key, token, now)
	if err != nil {
		return nil, err
	}
	grow := size - r.size
	if o := r.owner; o != nil && grow > 0 && o.bytes.Load()+grow > m.keyShare {
		return o, nil
	}
	if m.maxBytes > 0 && m.bytes.Load()+grow > m.maxBytes {
		return nil, fmt.Errorf("%w: memory store full (%d bytes)", ErrUnavailable, m.maxBytes)
	}
	m.bytes.Add(grow)
	if r.owner != nil {
		r.owner.bytes.Add(grow)
	}
	r.size = size
	r.state = StateCompleted
	r.resp = stored
	r.leaseUntil = 0
	r.expires = after(now, ttl)
	sh.push(expiryItem{at: r.expires, key: key, rec: r})
	return nil, nil
}

// Release implements Store.
func (m *Memory) Release(ctx context.Context, key, token string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	now := m.now().UnixNano()
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, err := m.holder(sh, key, token, now)
	if err != nil {
		return err
	}
	m.drop(sh, key, r)
	return nil
}

// Ping reports the in-process store healthy.
func (m *Memory) Ping(context.Context) error { return nil }

// Bytes returns the memory accounted to live records.
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
		m.reclaim(sh, now)
		sh.mu.Unlock()
	}
}

func (m *Memory) drop(sh *memShard, key string, r *memRecord) {
	if cur, ok := sh.records[key]; ok && cur == r {
		delete(sh.records, key)
		m.bytes.Add(-r.size)
		if r.owner != nil {
			r.owner.bytes.Add(-r.size)
		}
	}
}

// reclaim drops expired records. Called with sh.mu held.
func (m *Memory) reclaim(sh *memShard, now int64) {
	for len(sh.expiry) > 0 && sh.expiry[0].at <= now {
		it := sh.expiry.pop()
		if it.rec.expires == it.at && it.rec.expires <= now {
			m.drop(sh, it.key, it.rec)
		}
		if h := sh.owned[it.rec.owner]; it.rec.owner != nil && h != nil {
			for len(*h) > 0 && (*h)[0].at <= now {
				h.pop()
			}
		}
	}
}

// snapshot returns the record as callers see it. A completed response is
// never modified after Complete, so it is shared rather than copied.
func (r *memRecord) snapshot() *Record {
	return &Record{State: r.state, Fingerprint: r.fp, Response: r.resp}
}

func copyResponse(r *Response) *Response {
	if r == nil {
		return &Response{Header: http.Header{}}
	}
	c := &Response{Status: r.Status, Header: r.Header.Clone(), Body: append([]byte(nil), r.Body...)}
	if c.Header == nil {
		c.Header = http.Header{}
	}
	return c
}

func headerSize(h http.Header) int64 {
	var n int64
	for k, vs := range h {
		n += int64(len(k))
		for _, v := range vs {
			n += int64(len(v)) + 16
		}
	}
	return n
}

type expiryItem struct {
	at  int64
	key string
	rec *memRecord
}

// expiryHeap is a min-heap on at.
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
