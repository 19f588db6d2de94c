package resp

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/redis/layout"
)

var (
	claimScript    = NewScript(layout.ClaimScript)
	renewScript    = NewScript(layout.RenewScript)
	completeScript = NewScript(layout.CompleteScript)
	releaseScript  = NewScript(layout.ReleaseScript)
)

// Idempotency is the idempotency store on a Client, the same store as
// package redisstore's Idempotency: a record is a hash (see package layout)
// changed only by layout's scripts, run with EVALSHA (EVAL after a
// NOSCRIPT): Claim, which also returns the existing record; Renew;
// Complete; Release. Leases and TTLs are PEXPIRE on the record, timed by the
// Redis server's clock. A record written by either store is read by the
// other.
//
// Claim and Renew may be sent twice (Claim recognises its own fencing token
// in an in-progress record); Complete and Release never are, since a second
// run would find the first one's effect and report the lease lost.
type Idempotency struct {
	c    *Client
	opts storeOptions
}

var (
	_ idempotency.Store  = (*Idempotency)(nil)
	_ idempotency.Pinger = (*Idempotency)(nil)
)

// NewIdempotency returns an idempotency store on c. The caller keeps
// ownership of c and closes it.
func NewIdempotency(c *Client, opts ...StoreOption) *Idempotency {
	return &Idempotency{c: c, opts: newStoreOptions(opts)}
}

// Claim implements idempotency.Store.
func (s *Idempotency) Claim(ctx context.Context, key string, fp idempotency.Fingerprint, lease time.Duration) (idempotency.Claim, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.timeout)
	defer cancel()
	token := idempotency.NewToken()
	v, err := claimScript.run(ctx, s.c, true, []string{s.opts.keys.Idempotency(key)}, []any{token, fp[:], millis(lease)})
	if err != nil {
		return idempotency.Claim{}, unavailable(idempotency.ErrUnavailable, err)
	}
	r, ok := v.([]any)
	if !ok || len(r) == 0 {
		return idempotency.Claim{}, corrupt("claim reply %T", v)
	}
	if acquired, _ := r[0].(int64); acquired == 1 {
		return idempotency.Claim{Acquired: true, Token: token}, nil
	}
	rec, err := decodeRecord(r[1:])
	if err != nil {
		return idempotency.Claim{}, err
	}
	return idempotency.Claim{Existing: rec}, nil
}

// Renew implements idempotency.Store.
func (s *Idempotency) Renew(ctx context.Context, key, token string, lease time.Duration) error {
	return s.transition(ctx, renewScript, true, key, []any{token, millis(lease)})
}

// Complete implements idempotency.Store.
func (s *Idempotency) Complete(ctx context.Context, key, token string, resp *idempotency.Response, ttl time.Duration) error {
	return s.transition(ctx, completeScript, false, key,
		[]any{token, strconv.Itoa(resp.Status), layout.EncodeHeader(resp.Header), resp.Body, millis(ttl)})
}

// Release implements idempotency.Store.
func (s *Idempotency) Release(ctx context.Context, key, token string) error {
	return s.transition(ctx, releaseScript, false, key, []any{token})
}

// transition runs a script answering 1 (done) or 0 (the token no longer
// holds the record).
func (s *Idempotency) transition(ctx context.Context, sc *Script, retry bool, key string, args []any) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.timeout)
	defer cancel()
	v, err := sc.run(ctx, s.c, retry, []string{s.opts.keys.Idempotency(key)}, args)
	if err != nil {
		return unavailable(idempotency.ErrUnavailable, err)
	}
	n, ok := v.(int64)
	if ok && n == 1 {
		return nil
	}
	if ok && n == 0 {
		return idempotency.ErrLeaseLost
	}
	return corrupt("transition reply %v", v)
}

// Ping reports whether Redis answers within the timeout.
func (s *Idempotency) Ping(ctx context.Context) error {
	return ping(ctx, s.c, s.opts.timeout, idempotency.ErrUnavailable)
}

// Keys returns the key layout in force.
func (s *Idempotency) Keys() layout.Keys { return s.opts.keys }

// decodeRecord decodes {state, fingerprint, status, header, body}.
func decodeRecord(r []any) (*idempotency.Record, error) {
	if len(r) != 5 {
		return nil, corrupt("record of %d fields", len(r))
	}
	f := make([]string, len(r))
	for i, x := range r {
		s, ok := x.(string)
		if !ok {
			return nil, corrupt("record field %d is %T", i, x)
		}
		f[i] = s
	}
	rec := &idempotency.Record{}
	if len(f[1]) != len(rec.Fingerprint) {
		return nil, corrupt("fingerprint of %d bytes", len(f[1]))
	}
	copy(rec.Fingerprint[:], f[1])
	switch f[0] {
	case layout.StateInProgress:
		rec.State = idempotency.StateInProgress
	case layout.StateCompleted:
		rec.State = idempotency.StateCompleted
		status, err := strconv.Atoi(f[2])
		if err != nil {
			return nil, corrupt("status %q", f[2])
		}
		h, err := layout.DecodeHeader([]byte(f[3]))
		if err != nil {
			return nil, fmt.Errorf("%w: %w", idempotency.ErrUnavailable, err)
		}
		rec.Response = &idempotency.Response{Status: status, Header: h, Body: []byte(f[4])}
	default:
		return nil, corrupt("state %q", f[0])
	}
	return rec, nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: redis: unexpected "+format, append([]any{idempotency.ErrUnavailable}, args...)...)
}

// millis returns d in whole milliseconds, at least 1.
func millis(d time.Duration) int64 {
	ms := int64((d + time.Millisecond - 1) / time.Millisecond)
	if ms < 1 {
		return 1
	}
	return ms
}
