package resp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
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
	v, err := claimScript.run(ctx, s.c, true, RecordBytes(s.opts.maxBytes), []string{s.opts.keys.Idempotency(key)}, layout.ClaimArgs(token, fp, lease))
	if err != nil {
		return idempotency.Claim{}, unavailable(idempotency.ErrUnavailable, err)
	}
	return layout.DecodeClaim(v, token)
}

// Renew implements idempotency.Store.
func (s *Idempotency) Renew(ctx context.Context, key, token string, lease time.Duration) error {
	return s.transition(ctx, renewScript, true, key, layout.RenewArgs(token, lease))
}

// Complete implements idempotency.Store. A response whose record Claim
// could not read back, its body over WithMaxResponseBytes or its header
// over MaxRecordHeaderBytes, is not stored: the key is released, as
// for any response too large to keep, and the error wraps
// ErrRecordTooLarge.
func (s *Idempotency) Complete(ctx context.Context, key, token string, resp *idempotency.Response, ttl time.Duration) error {
	if body, header := int64(len(resp.Body)), headerBytes(resp.Header); body > s.opts.maxBytes || header > MaxRecordHeaderBytes {
		err := fmt.Errorf("%w: body of %d bytes (at most %d), header of up to %d bytes (at most %d); the key is released",
			ErrRecordTooLarge, body, s.opts.maxBytes, header, int64(MaxRecordHeaderBytes))
		if rerr := s.Release(ctx, key, token); rerr != nil {
			return fmt.Errorf("%w; release: %w", err, rerr)
		}
		return err
	}
	return s.transition(ctx, completeScript, false, key, layout.CompleteArgs(token, resp, ttl))
}

// ErrRecordTooLarge reports a response Idempotency.Complete does not
// store because its record would exceed what Claim reads back.
var ErrRecordTooLarge = errors.New("resp: response too large to store")

// headerBytes bounds what h takes in a record (layout.EncodeHeader): its
// names and values, and the most their length prefixes take.
func headerBytes(h http.Header) int64 {
	n := int64(0)
	for name, vs := range h {
		n += int64(len(name)) + 2*binary.MaxVarintLen32
		for _, v := range vs {
			n += int64(len(v)) + binary.MaxVarintLen32
		}
	}
	return n
}

// Release implements idempotency.Store.
func (s *Idempotency) Release(ctx context.Context, key, token string) error {
	return s.transition(ctx, releaseScript, false, key, layout.ReleaseArgs(token))
}

// transition runs a script answering 1 (done) or 0 (the token no longer
// holds the record).
func (s *Idempotency) transition(ctx context.Context, sc *Script, retry bool, key string, args []any) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.timeout)
	defer cancel()
	v, err := sc.run(ctx, s.c, retry, 0, []string{s.opts.keys.Idempotency(key)}, args)
	if err != nil {
		return unavailable(idempotency.ErrUnavailable, err)
	}
	return layout.DecodeTransition(v)
}

// Ping reports whether Redis answers within the timeout.
func (s *Idempotency) Ping(ctx context.Context) error {
	return ping(ctx, s.c, s.opts.timeout, idempotency.ErrUnavailable)
}

// Keys returns the key layout in force.
func (s *Idempotency) Keys() layout.Keys { return s.opts.keys }
