package bloomcore

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/replayguard/replayguard/nonce"
)

// DefaultShieldFalsePositiveRate is the rate at which a shield's filter
// should be sized: the rate at which it may take a fresh entry for one it
// has seen, rejecting it without asking the shared store.
const DefaultShieldFalsePositiveRate = 1e-12

// Filter is the in-process tier of a Shield: a nonce.Store that can also be
// asked without recording, such as bloom.Memory.
type Filter interface {
	nonce.Store
	// Contains reports whether Add would now report e as replayed, without
	// recording it.
	Contains(ctx context.Context, e nonce.Entry) (bool, error)
}

// Shield is `nonce.local_shield`: an in-process filter in front of a shared
// store. It remembers every entry the shared store has answered for,
// accepted or replayed, and answers a repeat of one with nonce.ErrReplayed
// without a round trip, so a replay flood costs no shared-store calls.
// Everything else goes to the shared store, so the shield never accepts
// what the shared store would reject; it can only reject a fresh entry,
// with probability at most its filter's false-positive rate (size it for
// DefaultShieldFalsePositiveRate), the same kind of error as `mode: bloom`.
type Shield struct {
	next  nonce.Store
	seen  Filter
	saved atomic.Uint64
}

var (
	_ nonce.Store  = (*Shield)(nil)
	_ nonce.Pinger = (*Shield)(nil)
)

// NewShield puts the filter seen in front of next. seen should hold an
// entry until it expires, and be sized for the entries of a window.
func NewShield(next nonce.Store, seen Filter) *Shield {
	return &Shield{next: next, seen: seen}
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

// AddWith is Add with add in place of the shared store's Add: add must
// record e in the shared store (Next), possibly with more in the same call,
// and return what Next's Add would. The shield answers a repeat it has
// seen without calling add, and remembers e when add accepts or rejects it
// as a replay.
func (s *Shield) AddWith(ctx context.Context, e nonce.Entry, add func(ctx context.Context) error) error {
	if seen, err := s.seen.Contains(ctx, e); err == nil && seen {
		s.saved.Add(1)
		return nonce.ErrReplayed
	}
	err := add(ctx)
	if err == nil || errors.Is(err, nonce.ErrReplayed) {
		_ = s.seen.Add(context.WithoutCancel(ctx), e)
	}
	return err
}
