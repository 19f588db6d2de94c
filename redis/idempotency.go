package redisstore

import (
	"context"
	"time"

	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/redis/layout"
)

var (
	claimScript    = newScript(layout.ClaimScript)
	renewScript    = newScript(layout.RenewScript)
	completeScript = newScript(layout.CompleteScript)
	releaseScript  = newScript(layout.ReleaseScript)
)

// Idempotency is the idempotency store on Redis. A record is a hash (see
// package layout) and every transition is one script run with EVALSHA (EVAL
// after a NOSCRIPT): Claim, which also returns the existing record, so a
// replay costs one round trip; Renew; Complete; Release. Leases and TTLs are
// PEXPIRE on the record, timed by the Redis server's clock, so every
// instance agrees on when a lease has run out: the record then vanishes and
// the next Claim takes the key. Responses are stored losslessly (headers
// with every value, binary bodies of any size Redis accepts).
//
// Claim sends a fencing token it made itself and recognises it in an
// in-progress record, so go-redis may retry it; Complete and Release are
// never retried, since a second run would find the first one's effect and
// report the lease lost.
type Idempotency struct {
	c    Client
	opts options
}

var (
	_ idempotency.Store  = (*Idempotency)(nil)
	_ idempotency.Pinger = (*Idempotency)(nil)
)

// NewIdempotency returns an idempotency store on c. The caller keeps
// ownership of c and closes it.
func NewIdempotency(c Client, opts ...Option) *Idempotency {
	return &Idempotency{c: c, opts: newOptions(opts)}
}

// Claim implements idempotency.Store.
func (s *Idempotency) Claim(ctx context.Context, key string, fp idempotency.Fingerprint, lease time.Duration) (idempotency.Claim, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.timeout)
	defer cancel()
	token := idempotency.NewToken()
	v, err := claimScript.run(ctx, s.c, true, []string{s.opts.keys.Idempotency(key)}, layout.ClaimArgs(token, fp, lease)...)
	if err != nil {
		return idempotency.Claim{}, unavailable(idempotency.ErrUnavailable, err)
	}
	return layout.DecodeClaim(v, token)
}

// Renew implements idempotency.Store.
func (s *Idempotency) Renew(ctx context.Context, key, token string, lease time.Duration) error {
	return s.transition(ctx, renewScript, true, key, layout.RenewArgs(token, lease))
}

// Complete implements idempotency.Store.
func (s *Idempotency) Complete(ctx context.Context, key, token string, resp *idempotency.Response, ttl time.Duration) error {
	return s.transition(ctx, completeScript, false, key, layout.CompleteArgs(token, resp, ttl))
}

// Release implements idempotency.Store.
func (s *Idempotency) Release(ctx context.Context, key, token string) error {
	return s.transition(ctx, releaseScript, false, key, layout.ReleaseArgs(token))
}

// transition runs a script answering 1 (done) or 0 (the token no longer
// holds the record).
func (s *Idempotency) transition(ctx context.Context, sc *script, retry bool, key string, args []any) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.timeout)
	defer cancel()
	v, err := sc.run(ctx, s.c, retry, []string{s.opts.keys.Idempotency(key)}, args...)
	if err != nil {
		return unavailable(idempotency.ErrUnavailable, err)
	}
	return layout.DecodeTransition(v)
}

// Ping reports whether Redis answers within the timeout.
func (s *Idempotency) Ping(ctx context.Context) error {
	return ping(ctx, s.c, s.opts.timeout, idempotency.ErrUnavailable)
}
