package redisstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/replayguard/replayguard/bloom/bloomcore"
	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/redisstore/layout"
)

var nonceClaimScript = NewScript(layout.NonceClaimScript)

// errNoNonceStore reports ClaimWithNonce on a store given no nonce store.
var errNoNonceStore = fmt.Errorf("%w: redisstore: the idempotency store was given no nonce store (WithNonceStore)", nonce.ErrUnavailable)

// WithNonceStore gives the idempotency store (NewIdempotency only) the
// nonce store of the same Guard, n, which makes it an
// idempotency.NonceClaimer: ClaimWithNonce adds a request's nonce to n and
// claims its idempotency key in one script run when n is a Nonce or a
// BloomNonce on the same Client (behind a bloomcore.Shield or not) and the
// keys allow it. Default none.
func WithNonceStore(n nonce.Store) Option {
	return func(o *options) { o.nonces = n }
}

// nonceClaimer is a nonce store of this package that can claim an
// idempotency record in its own call.
type nonceClaimer interface {
	nonce.Store
	// addClaiming adds e and, when it is fresh, claims cl's record in the
	// same call, returning ClaimScript's reply; nil when no claim was
	// made although e is fresh (the caller then claims on its own).
	addClaiming(ctx context.Context, e nonce.Entry, cl *claimCall) ([]any, error)
	// joins reports whether e's nonce and the record of the scoped
	// idempotency key can go in one call on c.
	joins(c Client, keys layout.Keys, e nonce.Entry, key string) bool
}

var (
	_ nonceClaimer = (*Nonce)(nil)
	_ nonceClaimer = (*BloomNonce)(nil)
)

// claimCall is an idempotency claim made in a nonce store's call.
type claimCall struct {
	s        *Idempotency
	key      string // the scoped idempotency key
	record   string // its record's key
	token    string
	fp       []byte
	leaseMs  int64
	maxReply int64
}

// failed releases, in the background, the claim a failed call may have
// made before its reply was lost, so that the client's retry need not wait
// for the lease to end. The release is bounded by the store's timeout; the
// request that failed does not wait for it.
func (cl *claimCall) failed() {
	s, key, token := cl.s, cl.key, cl.token
	go func() { _ = s.Release(context.Background(), key, token) }()
}

// NonceStore implements idempotency.NonceClaimer: the store given with
// WithNonceStore, nil without one.
func (s *Idempotency) NonceStore() nonce.Store { return s.nonces }

// ClaimWithNonce implements idempotency.NonceClaimer. When the nonce store
// is this package's, on the same Client, the nonce and the claim are one
// script run — layout.NonceClaimScript in exact mode, BloomClaimScript in
// Bloom mode — on a standalone server or Sentinel's master, and on a
// Cluster when the nonce's key and the record's key share a hash tag
// (layout.TagPrincipal on both stores, the nonce's scope the record's
// principal; never in Bloom mode, whose partitions are not the principal's).
// A bloomcore.Shield in front still answers the repeats it has seen
// without a call. Otherwise the nonce is added and the key claimed one
// after the other.
//
// Either way the answers are those of the two calls in sequence: a
// replayed nonce makes no claim; a failed call is the nonce's error (the
// claim it may have made is released in the background); the claim's
// outcome is Claim's. The exact run recognises its own nonce and claim
// tokens, so the client may send it twice; the Bloom run is sent once.
func (s *Idempotency) ClaimWithNonce(ctx context.Context, e nonce.Entry, _ string, key string, fp idempotency.Fingerprint, lease time.Duration) (idempotency.Claim, error, error) {
	if s.nonces == nil {
		return idempotency.Claim{}, errNoNonceStore, nil
	}
	if s.joint == nil || !s.joint.joins(s.c, s.opts.keys, e, key) {
		if err := s.nonces.Add(ctx, e); err != nil {
			return idempotency.Claim{}, err, nil
		}
		c, err := s.Claim(ctx, key, fp, lease)
		return c, nil, err
	}
	cl := &claimCall{s: s, key: key, record: s.opts.keys.Idempotency(key), token: idempotency.NewToken(),
		fp: fp[:], leaseMs: layout.Millis(lease), maxReply: layout.RecordBytes(s.opts.maxBytes)}
	var reply []any
	var err error
	if s.shield != nil {
		err = s.shield.AddWith(ctx, e, func(ctx context.Context) error {
			var err error
			reply, err = s.joint.addClaiming(ctx, e, cl)
			return err
		})
	} else {
		reply, err = s.joint.addClaiming(ctx, e, cl)
	}
	if err != nil {
		return idempotency.Claim{}, err, nil
	}
	if reply == nil {
		c, err := s.Claim(ctx, key, fp, lease)
		return c, nil, err
	}
	c, err := layout.DecodeClaim(reply, cl.token)
	return c, nil, err
}

// resolveNonces finds, behind the store given with WithNonceStore, the
// nonce store of this package on s's own Client that can take claims.
func (s *Idempotency) resolveNonces() {
	s.nonces = s.opts.nonces
	inner := s.nonces
	if sh, ok := inner.(*bloomcore.Shield); ok {
		s.shield, inner = sh, sh.Next()
	}
	var c Client
	switch n := inner.(type) {
	case *Nonce:
		s.joint, c = n, n.c
	case *BloomNonce:
		s.joint, c = n, n.c
	}
	if s.joint != nil && !sameClient(c, s.c) {
		s.joint = nil
		s.shield = nil
	}
}

// sameClient reports whether a and b are the same Client (false for
// clients of a type that cannot be compared).
func sameClient(a, b Client) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}

// principalOf returns the principal of a scoped idempotency key: what
// precedes its first zero byte.
func principalOf(key string) string {
	p, _, _ := strings.Cut(key, "\x00")
	return p
}

// joins implements nonceClaimer: on one server always; on a Cluster when
// both stores tag by principal and e's scope is the key's principal, so
// that both keys carry the same hash tag. An entry already expired is added
// without a call, so it does not join.
func (n *Nonce) joins(c Client, keys layout.Keys, e nonce.Entry, key string) bool {
	if !e.Expires.After(n.opts.now()) {
		return false
	}
	if standalone(c) {
		return true
	}
	return n.opts.keys.Tagging == layout.TagPrincipal && keys.Tagging == layout.TagPrincipal && e.Scope == principalOf(key)
}

// addClaiming implements nonceClaimer: NonceClaimScript, SET … NX GET
// and the claim in one run, which the client may send twice (both
// recognise their own tokens).
func (n *Nonce) addClaiming(ctx context.Context, e nonce.Entry, cl *claimCall) ([]any, error) {
	ctx, cancel := context.WithTimeout(ctx, n.opts.timeout)
	defer cancel()
	token := layout.NewNonceToken()
	ms := layout.UnixMilliCeil(e.Expires)
	// Pointers box without an allocation each.
	v, err := n.c.RunScript(ctx, nonceClaimScript, []string{n.opts.keys.Nonce(e.Scope, e.Key), cl.record},
		Cmd{Args: []any{&token, &ms, &cl.token, cl.fp, &cl.leaseMs}, MaxReply: cl.maxReply})
	if err != nil {
		cl.failed()
		return nil, unavailable(nonce.ErrUnavailable, err)
	}
	r, ok := v.([]any)
	if ok && len(r) == 1 && r[0] == int64(0) {
		return nil, nonce.ErrReplayed
	}
	if !ok || len(r) < 2 || r[0] != int64(1) {
		return nil, fmt.Errorf("%w: redis: unexpected script reply %v", nonce.ErrUnavailable, v)
	}
	return r[1:], nil
}

// joins implements nonceClaimer: only on one server, where a script may
// touch the partition's keys and the record, which do not share a slot.
func (b *BloomNonce) joins(c Client, _ layout.Keys, e nonce.Entry, _ string) bool {
	return e.Expires.After(b.opts.now()) && standalone(c)
}
