package redisstore

import (
	"context"
	"time"

	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/redisstore/layout"
)

// Nonce is the exact nonce store (`mode: exact`): one key per replay key
// (layout.Keys.Nonce), written with
//
//	SET <key> <token> NX GET PXAT <Entry.Expires in ms, rounded up>
//
// one command per check. The token is random per call: a nil reply means
// the key was free and is now ours; a reply equal to the token means the
// client sent the command twice (a timeout or a dropped connection after
// the first had written it), so it is still ours; any other value is a
// replay. No false positives; Redis memory grows with the nonces inside
// the window (see docs/redis.md for the measured bytes per nonce).
type Nonce struct {
	c    Client
	opts options
}

var (
	_ nonce.Store  = (*Nonce)(nil)
	_ nonce.Pinger = (*Nonce)(nil)
)

// NewNonce returns an exact nonce store on c. The caller keeps ownership of
// c and closes it.
func NewNonce(c Client, opts ...Option) *Nonce {
	return &Nonce{c: c, opts: newOptions(opts)}
}

// Add records e, or returns an error wrapping nonce.ErrReplayed when its
// scoped key is already recorded, or one wrapping nonce.ErrUnavailable when
// Redis does not answer within the timeout. An entry already expired is
// accepted without a call.
func (n *Nonce) Add(ctx context.Context, e nonce.Entry) error {
	if !e.Expires.After(n.opts.now()) {
		if err := ctx.Err(); err != nil {
			return unavailable(nonce.ErrUnavailable, err)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, n.opts.timeout)
	defer cancel()
	_, err := n.set(ctx, n.opts.keys.Nonce(e.Scope, e.Key), layout.NewNonceToken(), e.Expires)
	return err
}

// set runs the SET … NX GET PXAT command and interprets its reply. It
// reports whether the reply was the caller's own token.
func (n *Nonce) set(ctx context.Context, key, token string, expires time.Time) (own bool, err error) {
	// Pointers box without an allocation each.
	ms := layout.UnixMilliCeil(expires)
	v, err := n.c.Process(ctx, Cmd{Args: []any{"set", &key, &token, "nx", "get", "pxat", &ms}})
	switch {
	case err != nil:
		return false, unavailable(nonce.ErrUnavailable, err)
	case v == nil:
		return false, nil
	case layout.NonceFresh(v, token):
		return true, nil
	}
	return false, nonce.ErrReplayed
}

// Ping reports whether Redis answers within the timeout.
func (n *Nonce) Ping(ctx context.Context) error {
	return ping(ctx, n.c, n.opts.timeout, nonce.ErrUnavailable)
}

// Keys returns the key layout in force.
func (n *Nonce) Keys() layout.Keys { return n.opts.keys }
