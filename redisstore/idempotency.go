package redisstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/replayguard/replayguard/bloom/bloomcore"
	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/redisstore/layout"
)

var (
	claimScript    = NewScript(layout.ClaimScript)
	renewScript    = NewScript(layout.RenewScript)
	completeScript = NewScript(layout.CompleteScript)
	releaseScript  = NewScript(layout.ReleaseScript)
)

// ErrRecordTooLarge reports a response Idempotency.Complete does not
// store because its record would exceed what Claim reads back.
var ErrRecordTooLarge = errors.New("redisstore: response too large to store")

// Idempotency is the idempotency store on Redis. A record is a hash (see
// package layout) and every transition is one script run with EVALSHA
// (EVAL after a NOSCRIPT): Claim, which also returns the existing record,
// so a replay costs one round trip; Renew; Complete; Release. Leases and
// TTLs are PEXPIRE on the record, timed by the Redis server's clock, so
// every instance agrees on when a lease has run out: the record then
// vanishes and the next Claim takes the key. Responses are stored
// losslessly (headers with every value, binary bodies).
//
// Claim sends a fencing token it made itself and recognises it in an
// in-progress record, so the client may send it twice, as it may Renew;
// Complete and Release are sent once, since a second run would find the
// first one's effect and report the lease lost.
//
// Claim reads a record back within layout.RecordBytes of the largest body
// stored (WithMaxResponseBytes), so Complete does not store a response
// whose record would be larger.
//
// Given the Guard's nonce store (WithNonceStore), it is an
// idempotency.NonceClaimer: see ClaimWithNonce.
type Idempotency struct {
	c    Client
	opts options

	nonces nonce.Store       // WithNonceStore's; nil without
	shield *bloomcore.Shield // in front of joint, if any
	joint  nonceClaimer      // behind nonces, on c; nil when none
}

var (
	_ idempotency.Store        = (*Idempotency)(nil)
	_ idempotency.Pinger       = (*Idempotency)(nil)
	_ idempotency.NonceClaimer = (*Idempotency)(nil)
)

// NewIdempotency returns an idempotency store on c. The caller keeps
// ownership of c and closes it.
func NewIdempotency(c Client, opts ...Option) *Idempotency {
	s := &Idempotency{c: c, opts: newOptions(opts)}
	s.resolveNonces()
	return s
}

// Claim implements idempotency.Store.
func (s *Idempotency) Claim(ctx context.Context, key string, fp idempotency.Fingerprint, lease time.Duration) (idempotency.Claim, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.timeout)
	defer cancel()
	token := idempotency.NewToken()
	v, err := s.c.RunScript(ctx, claimScript, []string{s.opts.keys.Idempotency(key)},
		Cmd{Args: layout.ClaimArgs(token, fp, lease), MaxReply: layout.RecordBytes(s.opts.maxBytes)})
	if err != nil {
		return idempotency.Claim{}, unavailable(idempotency.ErrUnavailable, err)
	}
	return layout.DecodeClaim(v, token)
}

// Renew implements idempotency.Store.
func (s *Idempotency) Renew(ctx context.Context, key, token string, lease time.Duration) error {
	return s.transition(ctx, renewScript, key, Cmd{Args: layout.RenewArgs(token, lease)})
}

// Complete implements idempotency.Store. A response whose record Claim
// could not read back, its body over WithMaxResponseBytes or its header
// over layout.MaxRecordHeaderBytes, is not stored: the key is released, as
// for any response too large to keep, and the error wraps
// ErrRecordTooLarge.
func (s *Idempotency) Complete(ctx context.Context, key, token string, resp *idempotency.Response, ttl time.Duration) error {
	if body, header := int64(len(resp.Body)), headerBytes(resp.Header); body > s.opts.maxBytes || header > layout.MaxRecordHeaderBytes {
		err := fmt.Errorf("%w: body of %d bytes (at most %d), header of up to %d bytes (at most %d); the key is released",
			ErrRecordTooLarge, body, s.opts.maxBytes, header, int64(layout.MaxRecordHeaderBytes))
		if rerr := s.Release(ctx, key, token); rerr != nil {
			return fmt.Errorf("%w; release: %w", err, rerr)
		}
		return err
	}
	return s.transition(ctx, completeScript, key, Cmd{Args: layout.CompleteArgs(token, resp, ttl), Once: true})
}

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
	return s.transition(ctx, releaseScript, key, Cmd{Args: layout.ReleaseArgs(token), Once: true})
}

// transition runs a script answering 1 (done) or 0 (the token no longer
// holds the record).
func (s *Idempotency) transition(ctx context.Context, sc *Script, key string, cmd Cmd) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.timeout)
	defer cancel()
	v, err := s.c.RunScript(ctx, sc, []string{s.opts.keys.Idempotency(key)}, cmd)
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
