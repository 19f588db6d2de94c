package resp

import (
	"context"
	"crypto/sha1" //nolint:gosec // SHA-1 names Lua scripts in EVALSHA; it is not used for security.
	"encoding/hex"
)

// Script is a Lua script run with EVALSHA, falling back to EVAL (which
// also loads it) when the server answers NOSCRIPT: after SCRIPT FLUSH, a
// restart or a failover.
type Script struct {
	src, hash string
}

// NewScript returns the script with source src.
func NewScript(src string) *Script {
	sum := sha1.Sum([]byte(src)) //nolint:gosec // see import
	return &Script{src: src, hash: hex.EncodeToString(sum[:])}
}

// Hash returns the script's SHA-1 in lower-case hex, its EVALSHA name.
func (s *Script) Hash() string { return s.hash }

// Run runs the script on c with keys and args (typed as for Client.Do): one
// round trip, two after a NOSCRIPT. In a Cluster it is routed by keys[0];
// every key must share its slot. The reply decodes as for Client.Do, an
// error reply (a Lua error included) as an error of type *Error.
func (s *Script) Run(ctx context.Context, c *Client, keys []string, args ...any) (any, error) {
	return s.run(ctx, c, false, 0, keys, args)
}

// run runs the script, sent twice on a connection failure when retry is
// set (see Client), its reply bounded by limit when set, else by
// Options.MaxReplyBytes.
func (s *Script) run(ctx context.Context, c *Client, retry bool, limit int64, keys []string, args []any) (any, error) {
	a := make([]any, 0, 3+len(keys)+len(args))
	a = append(a, "evalsha", s.hash, len(keys))
	for _, k := range keys {
		a = append(a, k)
	}
	a = append(a, args...)
	cl := call{args: a, retry: retry, limit: limit}
	if len(keys) > 0 {
		cl.key, cl.keyed = keys[0], true
	}
	v, err := c.exec(ctx, cl)
	if e, ok := v.(*Error); ok && err == nil && e.Prefix() == "NOSCRIPT" {
		a[0], a[1] = "eval", s.src
		v, err = c.exec(ctx, cl)
	}
	return reply(v, err)
}
