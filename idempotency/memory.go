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
}

var _ Store = (*Memory)(nil)

type memShard struct {
	mu      sync.Mutex
	records map[string]*memRecord
	expiry  expiryHeap
}

type memRecord struct {
	state      State
	fp         Fingerprint
	token      string
	leaseUntil int64 // unix ns, in progress only
	expires    int64 // unix ns
	resp       *Response
	size       int64
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

// NewMemory returns an empty store.
func NewMemory(opts ...MemoryOption) *Memory {
	m := &Memory{now: time.Now, seed: maphash.MakeSeed(), maxBytes: DefaultMemoryMaxBytes, shards: make([]memShard, 32)}
	for _, o := range opts {
		o(m)
	}
	for i := range m.shards {
		m.shards[i].records = make(map[string]*memRecord)
	}
	return m
}

func (m *Memory) shard(key string) *memShard {
	return &m.shards[maphash.String(m.seed, key)&uint64(len(m.shards)-1)]
}

// Claim implements Store.
func (m *Memory) Claim(ctx context.Context, key string, fp Fingerprint, lease time.Duration) (Claim, error) {
	if err := ctx.Err(); err != nil {
		return Claim{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	now := m.now().UnixNano()
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	m.reclaim(sh, now)
	if r, ok := sh.records[key]; ok && r.expires > now {
		takeover := r.state == StateInProgress && r.leaseUntil <= now
		if !takeover {
			return Claim{Existing: r.snapshot()}, nil
		}
		m.drop(sh, key, r)
	} else if ok {
		m.drop(sh, key, r)
	}
	size := int64(recordOverhead + len(key))
	if m.maxBytes > 0 && m.bytes.Load()+size > m.maxBytes {
		return Claim{}, fmt.Errorf("%w: memory store full (%d bytes)", ErrUnavailable, m.maxBytes)
	}
	exp := after(now, lease)
	r := &memRecord{state: StateInProgress, fp: fp, token: NewToken(), leaseUntil: exp, expires: exp, size: size}
	sh.records[key] = r
	m.bytes.Add(size)
	sh.expiry.push(expiryItem{at: exp, key: key, rec: r})
	return Claim{Acquired: true, Token: r.token}, nil
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
		sh.expiry.push(expiryItem{at: r.expires, key: key, rec: r})
	}
	return nil
}

// Complete implements Store.
func (m *Memory) Complete(ctx context.Context, key, token string, resp *Response, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	stored := copyResponse(resp)
	size := int64(recordOverhead+len(key)+len(stored.Body)) + headerSize(stored.Header)
	now := m.now().UnixNano()
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, err := m.holder(sh, key, token, now)
	if err != nil {
		return err
	}
	if m.maxBytes > 0 && m.bytes.Load()+size-r.size > m.maxBytes {
		return fmt.Errorf("%w: memory store full (%d bytes)", ErrUnavailable, m.maxBytes)
	}
	m.bytes.Add(size - r.size)
	r.size = size
	r.state = StateCompleted
	r.resp = stored
	r.leaseUntil = 0
	r.expires = after(now, ttl)
	sh.expiry.push(expiryItem{at: r.expires, key: key, rec: r})
	return nil
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
	}
}

// reclaim drops expired records. Called with sh.mu held.
func (m *Memory) reclaim(sh *memShard, now int64) {
	for len(sh.expiry) > 0 && sh.expiry[0].at <= now {
		it := sh.expiry.pop()
		if it.rec.expires == it.at && it.rec.expires <= now {
			m.drop(sh, it.key, it.rec)
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
