package goredis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/replayguard/replayguard/confval"
	"github.com/replayguard/replayguard/redisstore"
)

// Client tuning.
const (
	// ClusterReloadInterval bounds how stale New's cluster topology may get
	// without errors; go-redis defaults to 60 s, during which it keeps
	// dialling a failed master.
	ClusterReloadInterval = time.Second
	// reloadEvery rate-limits the topology reloads errors trigger.
	reloadEvery = 100 * time.Millisecond
	// maxRetries is go-redis's retry count for commands that may be sent
	// twice; the stores' per-call deadline cuts retries short so the call
	// never exceeds redis.timeout.
	maxRetries = 2
)

// Client is a go-redis client as a redisstore.Client. Close closes the
// go-redis client.
type Client struct {
	c redis.UniversalClient
	// ap, when set, sends the commands of calls made at the same time in
	// one write on one connection and reads their replies in one go
	// (go-redis's autopipeliner); nil sends each on a connection of its
	// own.
	ap *redis.AutoPipeliner
	// inflight counts the calls in progress: a call that has at most
	// pipelineAbove in flight with it goes straight to a connection.
	inflight atomic.Int64
}

// pipelineAbove is the number of calls in flight at or below which a call
// goes straight to a connection of its own rather than through the
// autopipeliner: its handoffs between goroutines cost more than the
// syscalls they save until several calls share a write (measured with
// BenchmarkRedisPipelining: with 2 callers a call through the
// autopipeliner took twice the client CPU of a direct one, with 8 about as
// much, with 64 less than half).
const pipelineAbove = 4

var (
	_ redisstore.Client     = (*Client)(nil)
	_ redisstore.Standalone = (*Client)(nil)
)

// New returns a client for cfg: Sentinel when master_name is set, Cluster
// when addrs lists more than one address, standalone otherwise. TLS
// (system roots, TLS 1.2 or later), username and password, and the
// database (not in Cluster) come from cfg.
//
// Every network timeout is redis.timeout, and the stores give each call a
// deadline of redis.timeout that includes go-redis's own retries
// (maxRetries, with backoff between timeout/20 and timeout/4), so a request
// never waits longer than that on a dead Redis.
//
// A Cluster client reloads its slot map every ClusterReloadInterval and,
// rate-limited, after any failed command, so that after a failover it
// reaches the promoted replica within about a second instead of dialling
// the dead master for go-redis's default 60 seconds.
//
// On a standalone server and Sentinel's master, while more than a few calls
// are in flight their commands share a connection: they are written
// together and their replies read together (go-redis's autopipeliner),
// which costs one write and one read where each call would make its own,
// on the client and on the server. A call still waits at most until its
// context's deadline; a pipeline (ProcessPipeline) runs as one. A Cluster client
// sends each call on a connection of its own: go-redis's autopipeliner
// batches commands for several masters together, so one master failing
// would hold up the calls to the others until the timeout.
//
// go-redis writes its own log lines (a dial failing while Redis is down)
// through its process-wide logger, which New leaves as the program set it.
func New(cfg redisstore.Config) (*Client, error) {
	cfg = cfg.WithDefaults()
	if len(cfg.Addrs) == 0 {
		return nil, &confval.FieldError{Field: "redis.addrs", Err: errors.New("required")}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	timeout := cfg.Timeout.D()
	o := &redis.UniversalOptions{
		Addrs:      cfg.Addrs,
		MasterName: cfg.MasterName,
		Username:   cfg.Username,
		Password:   cfg.Password,
		DB:         cfg.DB,

		DialTimeout:           timeout,
		ReadTimeout:           timeout,
		WriteTimeout:          timeout,
		PoolTimeout:           timeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            maxRetries,
		MinRetryBackoff:       max(timeout/20, time.Millisecond),
		MaxRetryBackoff:       max(timeout/4, time.Millisecond),
		DialerRetries:         1,
		// Pipelines share the main pool: one bound on connections.
		PipelinePoolSize: -1,

		// RESP2: the stores use no push notifications, and go-redis peeks
		// for them with an extra read before every RESP3 reply.
		Protocol: 2,
		// CLIENT SETINFO and maintenance notifications are extra round
		// trips on connect that servers before 7.2 reject anyway.
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	if cfg.TLS {
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.MasterName == "" && len(cfg.Addrs) > 1 {
		co := o.Cluster()
		co.ClusterStateReloadInterval = ClusterReloadInterval
		c := redis.NewClusterClient(co)
		c.AddHook(&reloadHook{c: c})
		return &Client{c: c}, nil
	}
	c := redis.NewUniversalClient(o)
	ap, err := c.AsyncAutoPipeline()
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("redis: %w", err)
	}
	return &Client{c: c, ap: ap}, nil
}

// Wrap returns c as a redisstore.Client, each call on a connection of its
// own. The caller keeps ownership of c.
func Wrap(c redis.UniversalClient) *Client { return &Client{c: c} }

// Unwrap returns the go-redis client.
func (c *Client) Unwrap() redis.UniversalClient { return c.c }

// Standalone implements redisstore.Standalone: true for a client of one
// server (standalone, or Sentinel's master), false for a Cluster or Ring.
func (c *Client) Standalone() bool {
	_, ok := c.c.(*redis.Client)
	return ok
}

// Close closes the go-redis client.
func (c *Client) Close() error {
	if c.ap != nil {
		_ = c.ap.Close()
	}
	return c.c.Close()
}

// Process implements redisstore.Client. A command marked Once is never
// retried by go-redis.
func (c *Client) Process(ctx context.Context, cmd redisstore.Cmd) (any, error) {
	rc := redis.NewCmd(ctx, cmd.Args...)
	return reply(rc, c.process(ctx, wrap(rc, cmd.Once)))
}

// process runs cmd, on the autopipeliner when there is one and more than
// pipelineAbove calls are in flight, and waits for its reply until ctx is
// done: a command already queued then still runs, as one already written
// would, but the call returns.
func (c *Client) process(ctx context.Context, cmd redis.Cmder) error {
	if c.ap == nil {
		return c.c.Process(ctx, cmd)
	}
	n := c.inflight.Add(1)
	defer c.inflight.Add(-1)
	if n <= pipelineAbove {
		return c.c.Process(ctx, cmd)
	}
	return c.ap.Submit(ctx, cmd).WaitContext(ctx)
}

// ProcessPipeline implements redisstore.Client.
func (c *Client) ProcessPipeline(ctx context.Context, cmds []redisstore.Cmd) ([]any, error) {
	pipe := c.c.Pipeline()
	rcs := make([]*redis.Cmd, len(cmds))
	for i, cmd := range cmds {
		rcs[i] = redis.NewCmd(ctx, cmd.Args...)
		_ = pipe.Process(ctx, wrap(rcs[i], cmd.Once))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]any, len(rcs))
	for i, rc := range rcs {
		v, err := reply(rc, rc.Err())
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// RunScript implements redisstore.Client: EVALSHA, then EVAL after a
// NOSCRIPT.
func (c *Client) RunScript(ctx context.Context, s *redisstore.Script, keys []string, cmd redisstore.Cmd) (any, error) {
	a := s.EvalSHA(keys, cmd.Args)
	rc := redis.NewCmd(ctx, a...)
	err := c.process(ctx, wrap(rc, cmd.Once))
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		rc = redis.NewCmd(ctx, s.Eval(a)...)
		err = c.process(ctx, wrap(rc, cmd.Once))
	}
	return reply(rc, err)
}

// ConfigGet implements redisstore.Client: CONFIG GET on the server, or on
// every master of a Cluster.
func (c *Client) ConfigGet(ctx context.Context, parameter string) ([]string, error) {
	cc, ok := c.c.(*redis.ClusterClient)
	if !ok {
		v, err := configGet(ctx, c.c, parameter)
		if err != nil {
			return nil, err
		}
		return []string{v}, nil
	}
	var (
		mu  sync.Mutex
		out []string
	)
	err := cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		v, err := configGet(ctx, n, parameter)
		if err != nil {
			return err
		}
		mu.Lock()
		out = append(out, v)
		mu.Unlock()
		return nil
	})
	return out, err
}

func configGet(ctx context.Context, c redis.Cmdable, parameter string) (string, error) {
	m, err := c.ConfigGet(ctx, parameter).Result()
	if err != nil {
		return "", err
	}
	v, ok := m[parameter]
	if !ok {
		return "", fmt.Errorf("no value of %s", parameter)
	}
	return v, nil
}

// reply returns rc's value, a null reply as nil.
func reply(rc *redis.Cmd, err error) (any, error) {
	switch {
	case errors.Is(err, redis.Nil):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return rc.Val(), nil
}

// noRetry marks a command that must not be sent twice: a second BITFIELD
// would find the bits of the first and call a fresh nonce a replay, a second
// Complete would find its own completed record.
type noRetry struct{ redis.Cmder }

// NoRetry tells go-redis not to retry the command.
func (noRetry) NoRetry() bool { return true }

func wrap(rc *redis.Cmd, once bool) redis.Cmder {
	if once {
		return noRetry{rc}
	}
	return rc
}

// reloadHook reloads a cluster client's slot map, at most every
// reloadEvery, when a command fails: a dial error or timeout after a
// failover, CLUSTERDOWN, MOVED or READONLY all mean the map may be stale.
type reloadHook struct {
	c    *redis.ClusterClient
	last atomic.Int64 // unix nanoseconds of the last reload
}

func (h *reloadHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *reloadHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.observe(err)
		return err
	}
}

func (h *reloadHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.observe(err)
		return err
	}
}

func (h *reloadHook) observe(err error) {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, context.Canceled) || redis.HasErrorPrefix(err, "NOSCRIPT") {
		return
	}
	now := time.Now().UnixNano()
	last := h.last.Load()
	if now-last < int64(reloadEvery) || !h.last.CompareAndSwap(last, now) {
		return
	}
	h.c.ReloadState(context.Background())
}
