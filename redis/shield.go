package redisstore

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/replayguard/replayguard/bloom"
	"github.com/replayguard/replayguard/nonce"
)

// DefaultShieldFalsePositiveRate is the rate at which Shield's in-process
// filter may take a fresh entry for one it has seen, rejecting it without
// asking the shared store.
const DefaultShieldFalsePositiveRate = 1e-12

// Shield is `nonce.local_shield`: an in-process Bloom tier (bloom.Memory)
// in front of a shared store. It remembers every entry the shared store has
// answered for, accepted or replayed, and answers a repeat of one with
// nonce.ErrReplayed without a round trip, so a replay flood costs no Redis
// calls. Everything else goes to the shared store, so the shield never
// accepts what the shared store would reject; it can only reject a fresh
// entry, with probability at most its false-positive rate (default
// DefaultShieldFalsePositiveRate), the same kind of error as `mode: bloom`.
type Shield struct {
	next  nonce.Store
	seen  *bloom.Memory
	saved atomic.Uint64
}

var (
	_ nonce.Store  = (*Shield)(nil)
	_ nonce.Pinger = (*Shield)(nil)
)

// ShieldOption configures NewShield.
type ShieldOption func(*shieldOptions)

type shieldOptions struct {
	fpRate float64
	now    func() time.Time
}

// WithShieldFalsePositiveRate sets the shield's false-positive rate.
// Default DefaultShieldFalsePositiveRate.
func WithShieldFalsePositiveRate(p float64) ShieldOption {
	return func(o *shieldOptions) { o.fpRate = p }
}

// WithShieldClock sets the clock of the shield's filter, which drops
// expired buckets. Default time.Now.
func WithShieldClock(now func() time.Time) ShieldOption {
	return func(o *shieldOptions) { o.now = now }
}

// NewShield puts a shield sized for capacity entries per window (the span
// of signed timestamps) in front of next.
func NewShield(next nonce.Store, capacity uint, window time.Duration, opts ...ShieldOption) (*Shield, error) {
	o := shieldOptions{fpRate: DefaultShieldFalsePositiveRate, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	m, err := bloom.NewMemory(capacity, o.fpRate, window, bloom.WithClock(o.now))
	if err != nil {
		return nil, err
	}
	return &Shield{next: next, seen: m}, nil
}

// Add answers from the shield when it has seen e's scoped key (counted in
// Saved), and asks the shared store otherwise.
func (s *Shield) Add(ctx context.Context, e nonce.Entry) error {
	if seen, err := s.seen.Contains(ctx, e); err == nil && seen {
		s.saved.Add(1)
		return nonce.ErrReplayed
	}
	err := s.next.Add(ctx, e)
	if err == nil || errors.Is(err, nonce.ErrReplayed) {
		_ = s.seen.Add(context.WithoutCancel(ctx), e)
	}
	return err
}

// Saved returns the number of checks answered without a shared-store call.
func (s *Shield) Saved() uint64 { return s.saved.Load() }

// Next returns the shared store behind the shield.
func (s *Shield) Next() nonce.Store { return s.next }

// Ping pings the shared store.
func (s *Shield) Ping(ctx context.Context) error {
	if p, ok := s.next.(nonce.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}
