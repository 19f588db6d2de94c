package redisstore

import (
	"context"
	"crypto/sha1" //nolint:gosec // SHA-1 names Lua scripts in EVALSHA; it is not used for security.
	"encoding/hex"
	"fmt"
	"time"
)

// Client is what the stores need of a Redis client: four calls, which both
// replayguard clients provide (package resp's Client directly, go-redis
// through package goredis). A Client is safe for concurrent use.
//
// Replies are Go values: simple and bulk strings as string, integers as
// int64, arrays as []any, a null reply as nil (with a nil error). An error
// reply from the server is returned as an error.
//
// Arguments are string, []byte, int, int64, uint, uint64, and the pointers
// *string, *int64 and *uint64 (which box without an allocation each).
type Client interface {
	// Process sends one command and returns its reply. In a Cluster the
	// command goes to the node of its key, the argument after its name.
	Process(ctx context.Context, cmd Cmd) (any, error)
	// ProcessPipeline sends cmds, whose keys share one slot, in one round
	// trip, and returns their replies in order; when any fails, the error
	// of the first failure. It is sent twice only when no command is Once.
	ProcessPipeline(ctx context.Context, cmds []Cmd) ([]any, error)
	// RunScript runs s on keys (all in one slot; the first routes it) with
	// cmd.Args as its arguments: EVALSHA, and EVAL when the server answers
	// NOSCRIPT (after SCRIPT FLUSH, a restart or a failover). One round
	// trip, two after a NOSCRIPT.
	RunScript(ctx context.Context, s *Script, keys []string, cmd Cmd) (any, error)
	// ConfigGet returns the value of a server configuration parameter
	// (CONFIG GET) on every master: one value from a standalone server,
	// one per master in a Cluster.
	ConfigGet(ctx context.Context, parameter string) ([]string, error)
}

// Standalone is implemented by a Client that knows whether it talks to one
// server (a standalone server, or the master Sentinel names) rather than a
// Cluster. On one server a script may touch keys of different hash slots,
// so the idempotency store can add a nonce and claim a record in one run
// whatever their hash tags (see Idempotency.ClaimWithNonce); a Client
// without the method is taken for a Cluster client, where only keys of one
// slot go together.
type Standalone interface {
	// Standalone reports whether every call goes to one server.
	Standalone() bool
}

// standalone reports whether c is known to talk to one server.
func standalone(c Client) bool {
	// An anonymous interface: the Yaegi subset asserts to no named type
	// of this package.
	s, ok := c.(interface{ Standalone() bool })
	return ok && s.Standalone()
}

// Cmd is one command, or the arguments of one script run.
type Cmd struct {
	// Args is the command's name and arguments (see Client).
	Args []any
	// Once marks a command that must not be sent twice: one whose second
	// run would see the first one's effect (a Bloom BITFIELD, an
	// idempotency Complete or Release). A client may send any other
	// command again when the connection fails under it.
	Once bool
	// MaxReply is the largest reply the caller expects, in bytes, for a
	// client that bounds replies (package resp); 0 leaves the client's own
	// bound.
	MaxReply int64
}

// Script is a Lua script named by the SHA-1 of its source, as EVALSHA
// names it.
type Script struct {
	src, hash string
}

// NewScript returns the script with source src.
func NewScript(src string) *Script {
	sum := sha1.Sum([]byte(src)) //nolint:gosec // see import
	return &Script{src: src, hash: hex.EncodeToString(sum[:])}
}

// Source returns the script's Lua source, the argument of EVAL.
func (s *Script) Source() string { return s.src }

// Hash returns the script's SHA-1 in lower-case hex, the argument of
// EVALSHA.
func (s *Script) Hash() string { return s.hash }

// EvalSHA returns the command running s on keys with args by its hash:
// EVALSHA <hash> <len(keys)> <keys…> <args…>.
func (s *Script) EvalSHA(keys []string, args []any) []any {
	a := make([]any, 0, 3+len(keys)+len(args))
	a = append(a, "evalsha", s.hash, len(keys))
	for _, k := range keys {
		a = append(a, k)
	}
	return append(a, args...)
}

// Eval turns cmd, a command from EvalSHA, into the one sending the source,
// which also loads the script: EVAL <source> <len(keys)> <keys…> <args…>.
// A client sends it after the server answers EVALSHA with NOSCRIPT.
func (s *Script) Eval(cmd []any) []any {
	return append([]any{"eval", s.src}, cmd[2:]...)
}

// ping sends PING within timeout.
func ping(ctx context.Context, c Client, timeout time.Duration, sentinel error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := c.Process(ctx, Cmd{Args: []any{"ping"}}); err != nil {
		return unavailable(sentinel, err)
	}
	return nil
}

// unavailable wraps a Redis or context error in the store's sentinel.
func unavailable(sentinel, err error) error {
	return fmt.Errorf("%w: redis: %w", sentinel, err)
}
