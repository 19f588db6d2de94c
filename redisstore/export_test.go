package redisstore

import (
	"context"
	"time"
)

// SetForTest runs exact mode's SET … NX GET with a given token, as a
// go-redis retry of the same call would.
func (n *Nonce) SetForTest(ctx context.Context, key, token string, expires time.Time) (own bool, err error) {
	return n.set(ctx, key, token, expires)
}
