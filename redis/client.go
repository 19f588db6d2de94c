package redisstore

import (
	"context"
	"crypto/sha1" //nolint:gosec // SHA-1 names Lua scripts in EVALSHA; it is not used for security.
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/replayguard/replayguard"
)

// Client is the go-redis client the stores use: a standalone, Sentinel
// (failover) or Cluster client.
type Client = goredis.UniversalClient

// Client tuning.
const (
	// ClusterReloadInterval bounds how stale NewClient's cluster topology
	// may get without errors; go-redis defaults to 60 s, during which it
	// keeps dialling a failed master.
	ClusterReloadInterval = time.Second
	// reloadEvery rate-limits the topology reloads errors trigger.
	reloadEvery = 100 * time.Millisecond
	// maxRetries is go-redis's retry count for retry-safe commands; the
	// per-call deadline cuts retries short so the call never exceeds
	// redis.timeout.
	maxRetries = 2
)

// NewClient returns a client for cfg: Sentinel when master_name is set,
// Cluster when addrs lists more than one address, standalone otherwise.
// TLS (system roots, TLS 1.2 or later), username and password, and the
// database (not in Cluster) come from cfg. go-redis's own log lines go to
// slog.Default at debug level.
//
// Every network timeout is redis.timeout, and the stores give each call a
// deadline of redis.timeout that includes go-redis's own retries
// (maxRetries, with backoff between timeout/20 and timeout/4), so a request
// never waits longer than that on a dead Redis.
//
// A Cluster client reloads its slot map every ClusterReloadInterval and,
// rate-limited, after any failed command, so that after a failover it
// reaches the promoted replica within about a second instead of dialling the
// dead master for go-redis's default 60 seconds.
func NewClient(cfg replayguard.RedisConfig) (Client, error) {
	if len(cfg.Addrs) == 0 {
		return nil, &replayguard.FieldError{Field: "redis.addrs", Err: errors.New("required")}
	}
	for i, a := range cfg.Addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, &replayguard.FieldError{Field: fmt.Sprintf("redis.addrs[%d]", i), Err: fmt.Errorf("want host:port, got %q", a)}
		}
	}
	timeout := cfg.Timeout.D()
	if timeout <= 0 {
		timeout = replayguard.DefaultRedisTimeout
	}
	o := &goredis.UniversalOptions{
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
	quietOnce.Do(func() { goredis.SetLogger(debugLogger{}) })
	if cfg.TLS {
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.MasterName == "" && len(cfg.Addrs) > 1 {
		co := o.Cluster()
		co.ClusterStateReloadInterval = ClusterReloadInterval
		c := goredis.NewClusterClient(co)
		c.AddHook(&reloadHook{c: c})
		return c, nil
	}
	return goredis.NewUniversalClient(o), nil
}

var quietOnce sync.Once

// debugLogger sends go-redis's internal log lines (a dial failing while
// Redis is down, once per attempt) to slog.Default at debug level: the stores
// report every failure to their caller, which logs it once per request.
type debugLogger struct{}

func (debugLogger) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().Log(ctx, slog.LevelDebug, "redis: "+fmt.Sprintf(format, v...))
}

// reloadHook reloads a cluster client's slot map, at most every
// reloadEvery, when a command fails: a dial error or timeout after a
// failover, CLUSTERDOWN, MOVED or READONLY all mean the map may be stale.
type reloadHook struct {
	c    *goredis.ClusterClient
	last atomic.Int64 // unix nanoseconds of the last reload
}

func (h *reloadHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h *reloadHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		err := next(ctx, cmd)
		h.observe(err)
		return err
	}
}

func (h *reloadHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		err := next(ctx, cmds)
		h.observe(err)
		return err
	}
}

func (h *reloadHook) observe(err error) {
	if err == nil || errors.Is(err, goredis.Nil) || errors.Is(err, context.Canceled) || goredis.HasErrorPrefix(err, "NOSCRIPT") {
		return
	}
	now := time.Now().UnixNano()
	last := h.last.Load()
	if now-last < int64(reloadEvery) || !h.last.CompareAndSwap(last, now) {
		return
	}
	h.c.ReloadState(context.Background())
}

// noRetry marks a command that must not be sent twice: a second BITFIELD
// would find the bits of the first and call a fresh nonce a replay, a second
// Complete would find its own completed record.
type noRetry struct{ goredis.Cmder }

// NoRetry tells go-redis not to retry the command.
func (noRetry) NoRetry() bool { return true }

// do runs cmd, retried by go-redis when retry is set.
func do(ctx context.Context, c Client, cmd goredis.Cmder, retry bool) error {
	if retry {
		return c.Process(ctx, cmd)
	}
	return c.Process(ctx, noRetry{cmd})
}

// script is a Lua script run with EVALSHA, falling back to EVAL (which
// loads it) when the server does not know it: after SCRIPT FLUSH, a restart
// or a failover to a replica.
type script struct {
	src, sha string
}

func newScript(src string) *script {
	sum := sha1.Sum([]byte(src)) //nolint:gosec // see import
	return &script{src: src, sha: hex.EncodeToString(sum[:])}
}

// run runs s with keys and args in one round trip (two after a NOSCRIPT).
func (s *script) run(ctx context.Context, c Client, retry bool, keys []string, args ...any) (any, error) {
	a := make([]any, 0, 3+len(keys)+len(args))
	a = append(a, "evalsha", s.sha, len(keys))
	for _, k := range keys {
		a = append(a, k)
	}
	a = append(a, args...)
	cmd := goredis.NewCmd(ctx, a...)
	err := do(ctx, c, cmd, retry)
	if err != nil && goredis.HasErrorPrefix(err, "NOSCRIPT") {
		a[0], a[1] = "eval", s.src
		cmd = goredis.NewCmd(ctx, a...)
		err = do(ctx, c, cmd, retry)
	}
	if err != nil {
		return nil, err
	}
	return cmd.Val(), nil
}
