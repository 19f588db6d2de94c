package traefik

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/bloom/bloomcore"
	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/redisstore"
)

// storeSet is the stores one middleware instance uses.
type storeSet struct {
	nonces nonce.Store
	idem   idempotency.Store
}

// registry keeps stores alive across New calls. Traefik builds the
// middleware once per router that uses it and again on every dynamic
// configuration reload; a memory store rebuilt each time would forget the
// nonces it saw (a replay through another router, or after a reload, would
// pass), and a Redis client rebuilt each time would leak its connections.
//
// Stores are keyed by the middleware's name and the options that shape
// them: every router using one middleware, and every reload of it, shares
// its stores, whatever else changes (a rotated secret, the window of an
// exact store); two middlewares never share a store, local shield and
// Bloom filters in memory included, so neither reads the other's nonces
// or stored responses even where their key ids coincide. A Bloom store is
// sized by its capacity, false-positive rate, growth bound and window: a
// reload changing one of them gets a new store. Redis clients are keyed
// by the Redis options alone and shared; what separates two middlewares'
// records in one Redis is their redis.keyPrefix.
//
// Stores of a middleware that is removed or renamed stay here until
// Traefik restarts: a memory store then holds at most its caps
// (nonce.maxEntries, idempotency.memoryMaxBytes, a Bloom store's size) and
// its records expire. A memory store's key shares are those of the
// instance that created it.
var registry = struct {
	mu     sync.Mutex
	nonces map[string]nonce.Store
	idem   map[string]idempotency.Store
	redis  map[string]*redisConn
}{nonces: map[string]nonce.Store{}, idem: map[string]idempotency.Store{}, redis: map[string]*redisConn{}}

// redisKey identifies the Redis cfg names, and how its keys are named.
func redisKey(r redisstore.Config) string {
	return strings.Join([]string{strings.Join(r.Addrs, ","), r.MasterName, r.Username, r.Password,
		fmt.Sprint(r.DB), fmt.Sprint(r.TLS), r.Timeout.String(), r.KeyPrefix}, "\x00")
}

// span is the window a Bloom store is sized over: timestamp.tolerance plus
// timestamp.futureSkew, as the binary sizes its own.
func span(cfg replayguard.Config) time.Duration {
	return cfg.Timestamp.Tolerance.D() + cfg.Timestamp.FutureSkew.D()
}

// nonceKey identifies the nonce store of middleware name under cfg.
func nonceKey(name string, cfg replayguard.Config, rc redisstore.Config) string {
	n := cfg.Nonce
	parts := []string{name, n.Store, n.Mode, fmt.Sprint(n.MaxEntries)}
	if n.Mode == replayguard.ModeBloom {
		parts = append(parts, fmt.Sprint(n.Capacity), strconv.FormatFloat(n.FalsePositiveRate, 'g', -1, 64),
			fmt.Sprint(n.MaxSubFilters), span(cfg).String())
	}
	if n.Store == replayguard.StoreRedis {
		parts = append(parts, redisKey(rc), fmt.Sprint(n.LocalShield))
		if n.LocalShield {
			parts = append(parts, fmt.Sprint(n.Capacity), span(cfg).String())
		}
	}
	return strings.Join(parts, "\x00")
}

// idempotencyKey identifies the idempotency store of middleware name under
// cfg.
func idempotencyKey(name string, cfg replayguard.Config, rc redisstore.Config) string {
	k := name + "\x00" + cfg.Idempotency.Store + "\x00" + fmt.Sprint(cfg.Idempotency.MemoryMaxBytes)
	if cfg.Idempotency.Store == replayguard.StoreRedis {
		// The largest record the store reads back follows
		// max_response_bytes.
		k += "\x00" + redisKey(rc) + "\x00" + fmt.Sprint(cfg.Idempotency.MaxResponseBytes)
	}
	return k
}

// sharedStores returns the stores of middleware name under cfg, building
// those not built yet; log reports what they report.
func sharedStores(ctx context.Context, name string, cfg replayguard.Config, rc redisstore.Config, log *slog.Logger) (*storeSet, error) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	conn := func() (*redisConn, error) {
		k := redisKey(rc)
		if c, ok := registry.redis[k]; ok {
			return c, nil
		}
		c, err := dialRedis(ctx, rc)
		if err != nil {
			return nil, err
		}
		registry.redis[k] = c
		return c, nil
	}
	s := &storeSet{}

	nk := nonceKey(name, cfg, rc)
	if ns, ok := registry.nonces[nk]; ok {
		s.nonces = ns
	} else {
		ns, err := newNonceStore(cfg, conn, log)
		if err != nil {
			return nil, err
		}
		registry.nonces[nk] = ns
		s.nonces = ns
	}

	ik := idempotencyKey(name, cfg, rc)
	if is, ok := registry.idem[ik]; ok {
		s.idem = is
	} else {
		if cfg.Idempotency.Store == replayguard.StoreRedis {
			c, err := conn()
			if err != nil {
				return nil, err
			}
			s.idem = c.idempotency(cfg.Idempotency.MaxResponseBytes)
		} else {
			s.idem = idempotency.NewMemory(cfg.IdempotencyMemoryOptions()...)
		}
		registry.idem[ik] = s.idem
	}
	return s, nil
}

// newNonceStore builds the nonce store cfg describes, as the binary's
// package stores builds it: exact or Bloom, in memory or in Redis, and in
// Redis behind a local shield when asked (in memory there is no round
// trip for a shield to save, and nonce.localShield is ignored, as it is by
// the binary).
func newNonceStore(cfg replayguard.Config, conn func() (*redisConn, error), log *slog.Logger) (nonce.Store, error) {
	n := cfg.Nonce
	bloom := n.Mode == replayguard.ModeBloom
	var watch *bloomWatch
	if bloom {
		watch = &bloomWatch{log: log, target: n.FalsePositiveRate, capacity: n.Capacity}
	}
	if n.Store != replayguard.StoreRedis {
		if !bloom {
			return nonce.NewMemory(cfg.NonceMemoryOptions()...), nil
		}
		m, err := bloomcore.NewMemory(uint(n.Capacity), n.FalsePositiveRate, span(cfg),
			bloomcore.WithMaxSubFilters(n.MaxSubFilters), bloomcore.WithKeyShare(cfg.KeyShare(n.KeyShare)),
			bloomcore.WithGrowth(watch.grew))
		if err != nil {
			return nil, fmt.Errorf("config: nonce: %w", err)
		}
		watch.memory = m
		return m, nil
	}
	c, err := conn()
	if err != nil {
		return nil, err
	}
	var st nonce.Store
	if bloom {
		b, err := c.bloomNonces(uint(n.Capacity), n.FalsePositiveRate, span(cfg), watch.grew)
		if err != nil {
			return nil, fmt.Errorf("config: nonce: %w", err)
		}
		watch.redis = b
		st = b
	} else {
		st = c.nonces()
	}
	if !n.LocalShield {
		return st, nil
	}
	seen, err := bloomcore.NewMemory(uint(n.Capacity), bloomcore.DefaultShieldFalsePositiveRate, span(cfg))
	if err != nil {
		return nil, fmt.Errorf("config: nonce.localShield: %w", err)
	}
	return bloomcore.NewShield(st, seen), nil
}

// bloomWatch reports, in place of the binary's metrics, what a Bloom store
// does that its operator must know: a bucket stacking a sub-filter (it
// received more than its share of nonce.capacity) and a bucket whose
// estimated false-positive rate passed nonce.falsePositiveRate. Both are
// logged as warnings, which Traefik's default level shows.
type bloomWatch struct {
	log      *slog.Logger
	target   float64
	capacity int
	// The store whose buckets are read, as the binary's metrics read
	// them: one of the two.
	memory *bloomcore.Memory
	redis  *redisstore.BloomNonce

	mu       sync.Mutex
	checking bool
	// passed holds the buckets reported over the target, by start.
	passed map[time.Time]bool
}

// grew logs g and has the store's buckets checked against the target.
func (w *bloomWatch) grew(g bloomcore.Growth) {
	w.log.LogAttrs(context.Background(), slog.LevelWarn, "nonce Bloom filter grew: a bucket received more than its share of nonce.capacity",
		slog.Time("bucket", g.Bucket), slog.Int("partition", g.Partition), slog.Int("subfilters", g.SubFilters),
		slog.Int("capacity", w.capacity))
	w.mu.Lock()
	start := !w.checking && (w.memory != nil || w.redis != nil)
	w.checking = w.checking || start
	w.mu.Unlock()
	if start {
		go w.check()
	}
}

// check logs each bucket whose estimated false-positive rate passed the
// target, once per bucket.
func (w *bloomWatch) check() {
	var stats []bloomcore.BucketStats
	var err error
	if w.memory != nil {
		stats = w.memory.Stats()
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		stats, err = w.redis.Stats(ctx)
		cancel()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.checking = false
	if err != nil {
		return
	}
	if w.passed == nil {
		w.passed = map[time.Time]bool{}
	}
	live := map[time.Time]bool{}
	for _, s := range stats {
		live[s.Start] = true
		if s.FalsePositiveRate <= w.target || w.passed[s.Start] {
			continue
		}
		w.passed[s.Start] = true
		w.log.LogAttrs(context.Background(), slog.LevelWarn, "nonce Bloom filter passed its target false-positive rate",
			slog.Time("bucket", s.Start), slog.Float64("false_positive_rate", s.FalsePositiveRate),
			slog.Float64("target", w.target), slog.Int("subfilters", s.SubFilters), slog.Float64("fill_ratio", s.FillRatio))
	}
	for start := range w.passed {
		if !live[start] {
			delete(w.passed, start)
		}
	}
}
