package idempotency

import (
	"context"
	"time"
)

// WithTimeout returns s with every call bounded by d: a request never
// waits on a dead store longer than that. d <= 0 returns s unchanged.
func WithTimeout(s Store, d time.Duration) Store {
	if d <= 0 {
		return s
	}
	return &timeoutStore{s: s, d: d}
}

type timeoutStore struct {
	s Store
	d time.Duration
}

func (t *timeoutStore) Claim(ctx context.Context, key string, fp Fingerprint, lease time.Duration) (Claim, error) {
	ctx, cancel := context.WithTimeout(ctx, t.d)
	defer cancel()
	return t.s.Claim(ctx, key, fp, lease)
}

func (t *timeoutStore) Renew(ctx context.Context, key, token string, lease time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, t.d)
	defer cancel()
	return t.s.Renew(ctx, key, token, lease)
}

func (t *timeoutStore) Complete(ctx context.Context, key, token string, resp *Response, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, t.d)
	defer cancel()
	return t.s.Complete(ctx, key, token, resp, ttl)
}

func (t *timeoutStore) Release(ctx context.Context, key, token string) error {
	ctx, cancel := context.WithTimeout(ctx, t.d)
	defer cancel()
	return t.s.Release(ctx, key, token)
}

// Unwrap returns the wrapped store.
func (t *timeoutStore) Unwrap() Store { return t.s }
