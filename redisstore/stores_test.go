package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/bloom/bloomcore"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/redisstore"
	"github.com/replayguard/replayguard/redisstore/redistest"
	"github.com/replayguard/replayguard/stores"
)

type watcher struct {
	blooms map[string]func() []bloomcore.BucketStats
	funcs  map[string]func() float64
}

func (w *watcher) WatchBloom(name string, stats func() []bloomcore.BucketStats) {
	w.blooms[name] = stats
}
func (w *watcher) WatchFunc(name, _ string, _ bool, fn func() float64) { w.funcs[name] = fn }

// redisAt is the redis: section of the stores these tests open.
func redisAt(addr string) stores.Option {
	return stores.WithRedis(redisstore.Config{Addrs: []string{addr}, KeyPrefix: "st", Timeout: replayguard.Duration(slow)})
}

func redisConfig(addr string, mutate func(*replayguard.Config)) replayguard.Config {
	c := replayguard.Config{
		Keys:  []replayguard.KeyConfig{{ID: "a", Secrets: []string{"s"}}},
		Nonce: replayguard.NonceConfig{Store: "redis"},
	}
	c.Idempotency.Store = "redis"
	if mutate != nil {
		mutate(&c)
	}
	return c.WithDefaults()
}

// stores.Open builds the Redis stores a configuration names, on one shared
// client, and reports their statistics for metrics.
func TestStoresOpenRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()

	s, err := stores.Open(ctx, redisConfig(srv.Addr(), nil), redisAt(srv.Addr()))
	require.NoError(t, err)
	assert.IsType(t, &redisstore.Nonce{}, s.Nonce)
	assert.IsType(t, &redisstore.Idempotency{}, s.Idempotency)
	assert.Equal(t, []string{"nonce:redis-exact", "idempotency:redis"}, s.Names)
	require.NoError(t, s.Ping(ctx))
	require.NoError(t, s.Close())

	s, err = stores.Open(ctx, redisConfig(srv.Addr(), func(c *replayguard.Config) {
		c.Nonce.Mode = "bloom"
		c.Nonce.LocalShield = true
		c.Nonce.Capacity = 10_000
	}), redisAt(srv.Addr()))
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, []string{"nonce:redis-bloom+local-shield", "idempotency:redis"}, s.Names)
	e := nonce.Entry{Scope: "a", Key: "n-0123456789abcdef", Timestamp: time.Now(), Expires: time.Now().Add(time.Minute)}
	require.NoError(t, s.Nonce.Add(ctx, e))
	for i := 0; i < 3; i++ {
		require.ErrorIs(t, s.Nonce.Add(ctx, e), nonce.ErrReplayed)
	}
	w := &watcher{blooms: map[string]func() []bloomcore.BucketStats{}, funcs: map[string]func() float64{}}
	s.WatchRedis(w)
	assert.Equal(t, 3.0, w.funcs["replayguard_nonce_local_shield_saved_total"](), "three repeats answered in process")
	stats := w.blooms["nonce"]()
	require.Len(t, stats, 1)
	assert.Equal(t, uint64(1), stats[0].Entries)
	assert.Positive(t, stats[0].FalsePositiveRate)
}

// Under fail_mode closed an unreachable Redis fails Open naming the field;
// under open the gateway starts degraded and recovers when Redis answers.
func TestStoresOpenUnreachableRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	addr := srv.Addr()
	srv.Kill()
	ctx := context.Background()
	_, err := stores.Open(ctx, redisConfig(addr, nil), redisAt(addr))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nonce.store")

	s, err := stores.Open(ctx, redisConfig(addr, func(c *replayguard.Config) { c.FailMode = "open" }), redisAt(addr))
	require.NoError(t, err)
	defer s.Close()
	require.Error(t, s.Ping(ctx))
	srv.Restart()
	require.Eventually(t, func() bool { return s.Ping(ctx) == nil }, 5*time.Second, 20*time.Millisecond)
}
