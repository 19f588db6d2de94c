package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/redis/layout"
)

// Nonce is the exact nonce store (`mode: exact`): one key per replay key,
// written with
//
//	SET <key> <token> NX GET PXAT <Entry.Expires in ms>
//
// one command per check. The token is random per call: a nil reply means the
// key was free and is now ours; a reply equal to the token means go-redis
// retried the command after the first attempt had already written it (a
// timeout or a dropped connection), so it is still ours; any other value is
// a replay. No false positives; Redis memory grows with the nonces inside
// the window (see the README for the measured bytes per nonce).
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
	token := layout.NewNonceToken()
	_, err := n.set(ctx, n.opts.keys.Nonce(e.Scope, e.Key), token, e.Expires)
	return err
}

// set runs the SET … NX GET PXAT command and interprets its reply. It
// reports whether the reply was the caller's own token.
func (n *Nonce) set(ctx context.Context, key, token string, expires time.Time) (own bool, err error) {
	// Pointers box without an allocation each.
	ms := layout.UnixMilliCeil(expires)
	cmd := goredis.NewCmd(ctx, "set", &key, &token, "nx", "get", "pxat", &ms)
	err = n.c.Process(ctx, cmd)
	switch {
	case errors.Is(err, goredis.Nil):
		return false, nil
	case err != nil:
		return false, unavailable(nonce.ErrUnavailable, err)
	}
	if layout.NonceFresh(cmd.Val(), token) {
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

func ping(ctx context.Context, c Client, timeout time.Duration, sentinel error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		return unavailable(sentinel, err)
	}
	return nil
}

// unavailable wraps a Redis or context error in the store's sentinel.
func unavailable(sentinel, err error) error {
	return fmt.Errorf("%w: redis: %w", sentinel, err)
}
