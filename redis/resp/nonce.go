package resp

import (
	"context"
	"time"

	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/redis/layout"
)

// Nonce is the exact nonce store (`nonce.mode: exact`) on a Client, the
// same store as package redisstore's Nonce: one key per replay key
// (layout.Keys.Nonce), written with
//
//	SET <key> <token> NX GET PXAT <Entry.Expires in ms, rounded up>
//
// The token is random per call: a nil reply means the key was free and is
// now ours; a reply equal to the token means the command was sent twice
// (the Client resends it once when a pooled connection fails under it) and
// the first one had written it, so it is still ours; anything else is a
// replay. A nonce accepted by either store is a replay for the other.
type Nonce struct {
	c    *Client
	opts storeOptions
}

var (
	_ nonce.Store  = (*Nonce)(nil)
	_ nonce.Pinger = (*Nonce)(nil)
)

// NewNonce returns an exact nonce store on c. The caller keeps ownership of
// c and closes it.
func NewNonce(c *Client, opts ...StoreOption) *Nonce {
	return &Nonce{c: c, opts: newStoreOptions(opts)}
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
func (n *Nonce) set(ctx context.Context, key, token string, expires time.Time) (bool, error) {
	v, err := n.c.exec(ctx, call{
		args: []any{"set", key, token, "nx", "get", "pxat", layout.UnixMilliCeil(expires)},
		key:  key, keyed: true, retry: true,
	})
	if err == nil {
		if e, ok := v.(*Error); ok {
			err = e
		}
	}
	if err != nil {
		return false, unavailable(nonce.ErrUnavailable, err)
	}
	if v == nil {
		return false, nil
	}
	if layout.NonceFresh(v, token) {
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

// ping sends PING within timeout.
func ping(ctx context.Context, c *Client, timeout time.Duration, sentinel error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, err := c.exec(ctx, call{args: []any{"ping"}, retry: true})
	if err == nil {
		if e, ok := v.(*Error); ok {
			err = e
		}
	}
	if err != nil {
		return unavailable(sentinel, err)
	}
	return nil
}
