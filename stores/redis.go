package stores

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/bloom"
	"github.com/replayguard/replayguard/bloom/bloomcore"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/redisstore"
	"github.com/replayguard/replayguard/redisstore/goredis"
)

type redisClient = *goredis.Client

// WithRedis sets the Redis of the stores set to "redis" (the `redis:`
// section's settings), with keys tagged by key (redis.tagging's default).
func WithRedis(c redisstore.Config) Option {
	return WithRedisSection(redisstore.Section{Config: c})
}

// WithRedisSection sets the Redis of the stores set to "redis": the
// `redis:` section as the binary and the Caddy module read it, the key
// tagging included.
func WithRedisSection(s redisstore.Section) Option {
	return func(o *options) { o.redis = s }
}

// redisClient returns the Set's Redis client, creating it on first use.
// A new client is pinged: under fail_mode closed an unreachable Redis fails
// Open with an error naming field; under open the gateway starts degraded
// and the client connects when Redis answers.
func (s *Set) redisClient(ctx context.Context, cfg replayguard.Config, o options, field string) (redisClient, error) {
	if s.redis != nil {
		return s.redis, nil
	}
	rc := o.redis.WithDefaults()
	if len(rc.Addrs) == 0 {
		return nil, &replayguard.FieldError{Field: "redis.addrs", Err: fmt.Errorf("required when %s is %q", field, replayguard.StoreRedis)}
	}
	c, err := goredis.New(rc.Config)
	if err != nil {
		return nil, err
	}
	s.redis = c
	s.closers = append(s.closers, c.Close)
	pctx, cancel := context.WithTimeout(ctx, rc.Timeout.D()*5)
	defer cancel()
	if err := c.Unwrap().Ping(pctx).Err(); err != nil {
		if cfg.FailMode != replayguard.FailOpen {
			return nil, &replayguard.FieldError{Field: field, Err: fmt.Errorf("redis at %s does not answer: %w", strings.Join(rc.Addrs, ","), err)}
		}
		return c, nil
	}
	if w := redisstore.EvictionWarning(pctx, c); w != "" {
		s.Warnings = append(s.Warnings, w)
	}
	if err := redisstore.CheckTagging(pctx, c, rc.Keys(), rc.Timeout.D()*5); err != nil {
		if errors.Is(err, redisstore.ErrTaggingMismatch) {
			return nil, &replayguard.FieldError{Field: "redis.tagging", Err: err}
		}
		s.Warnings = append(s.Warnings, fmt.Sprintf("redis.tagging could not be checked against the other instances' (%v)", err))
	}
	return c, nil
}

func redisOptions(o options) []redisstore.Option {
	return append(o.redis.WithDefaults().StoreOptions(), redisstore.WithClock(o.now))
}

func (s *Set) openRedisNonce(ctx context.Context, cfg replayguard.Config, o options) error {
	c, err := s.redisClient(ctx, cfg, o, "nonce.store")
	if err != nil {
		return err
	}
	span := cfg.Timestamp.Tolerance.D() + cfg.Timestamp.FutureSkew.D()
	var (
		st   nonce.Store
		p    pinger
		name string
	)
	switch cfg.Nonce.Mode {
	case replayguard.ModeExact:
		n := redisstore.NewNonce(c, redisOptions(o)...)
		st, p, name = n, n, "nonce:redis-exact"
	case replayguard.ModeBloom:
		b, err := redisstore.NewBloomNonce(c, uint(cfg.Nonce.Capacity), cfg.Nonce.FalsePositiveRate, span, redisOptions(o)...)
		if err != nil {
			return &replayguard.FieldError{Field: "nonce", Err: err}
		}
		st, p, name = b, b, "nonce:redis-bloom"
	default:
		return &replayguard.FieldError{Field: "nonce.mode", Err: fmt.Errorf("unknown mode %q", cfg.Nonce.Mode)}
	}
	if cfg.Nonce.LocalShield {
		seen, err := bloom.NewMemory(uint(cfg.Nonce.Capacity), bloomcore.DefaultShieldFalsePositiveRate, span, bloom.WithClock(o.now))
		if err != nil {
			return &replayguard.FieldError{Field: "nonce.local_shield", Err: err}
		}
		st, name = bloomcore.NewShield(st, seen), name+"+local-shield"
	}
	s.add(name, st, p)
	return nil
}

func (s *Set) openRedisIdempotency(ctx context.Context, cfg replayguard.Config, o options) error {
	c, err := s.redisClient(ctx, cfg, o, "idempotency.store")
	if err != nil {
		return err
	}
	opts := append(redisOptions(o), redisstore.WithMaxResponseBytes(cfg.Idempotency.MaxResponseBytes))
	if cfg.Nonce.Store == replayguard.StoreRedis && s.Nonce != nil {
		// The nonce store on the same client: a covered request's nonce
		// and claim go in one call where the keys allow it.
		opts = append(opts, redisstore.WithNonceStore(s.Nonce))
	}
	st := redisstore.NewIdempotency(c, opts...)
	s.Idempotency = st
	s.Names = append(s.Names, "idempotency:redis")
	s.pingers = append(s.pingers, namedPinger{"idempotency:redis", st})
	return nil
}

// Watcher receives store statistics for metrics; *metrics.Metrics
// implements it.
type Watcher interface {
	WatchBloom(name string, stats func() []bloomcore.BucketStats)
	WatchFunc(name, help string, counter bool, fn func() float64)
}

// WatchRedis reports the Redis nonce store's statistics to w: for `mode:
// bloom` the fill and estimated false-positive rate of every bucket this
// instance has written to (read from Redis at each collection, within
// redis.timeout per partition), and with `local_shield` the checks it
// answered without a Redis call, as
// replayguard_nonce_local_shield_saved_total.
func (s *Set) WatchRedis(w Watcher) {
	st := s.Nonce
	if sh, ok := st.(*bloomcore.Shield); ok {
		w.WatchFunc("replayguard_nonce_local_shield_saved_total",
			"Nonce checks the local shield answered without a shared-store call.", true,
			func() float64 { return float64(sh.Saved()) })
		st = sh.Next()
	}
	if b, ok := st.(*redisstore.BloomNonce); ok {
		w.WatchBloom("nonce", func() []bloomcore.BucketStats {
			stats, err := b.Stats(context.Background())
			if err != nil {
				return nil
			}
			return stats
		})
	}
}
