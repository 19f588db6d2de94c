package stores_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/bloom"
	"github.com/replayguard/replayguard/disk"
	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/redisstore"
	"github.com/replayguard/replayguard/stores"
)

func cfg(mutate func(*replayguard.Config)) replayguard.Config {
	c := replayguard.Config{Keys: []replayguard.KeyConfig{{ID: "a", Secrets: []string{"s-0123456789abcdef"}}}}
	if mutate != nil {
		mutate(&c)
	}
	return c.WithDefaults()
}

func TestOpenBuildsConfiguredStores(t *testing.T) {
	ctx := context.Background()
	s, err := stores.Open(ctx, cfg(nil))
	require.NoError(t, err)
	assert.IsType(t, &nonce.Memory{}, s.Nonce)
	assert.IsType(t, &idempotency.Memory{}, s.Idempotency)
	assert.Equal(t, []string{"nonce:memory-exact", "idempotency:memory"}, s.Names)
	require.NoError(t, s.Ping(ctx))
	require.NoError(t, s.Close())

	s, err = stores.Open(ctx, cfg(func(c *replayguard.Config) {
		c.Nonce.Mode = "bloom"
		c.Nonce.Capacity = 10000
		c.Idempotency.Enabled = new(bool)
	}))
	require.NoError(t, err)
	assert.IsType(t, &bloom.Memory{}, s.Nonce)
	assert.Nil(t, s.Idempotency)

	// The Guard built with them rejects a replay.
	g, err := replayguard.New(cfg(func(c *replayguard.Config) { c.Nonce.Mode = "bloom" }), s.Options()...)
	require.NoError(t, err)
	e := nonce.Entry{Scope: "a", Key: "n-0123456789abcdef", Timestamp: time.Now(), Expires: time.Now().Add(time.Minute)}
	require.NoError(t, s.Nonce.Add(ctx, e))
	require.ErrorIs(t, s.Nonce.Add(ctx, e), nonce.ErrReplayed)
	assert.NotNil(t, g)
}

func TestOpenRejectsUnavailableStore(t *testing.T) {
	_, err := stores.Open(context.Background(), cfg(func(c *replayguard.Config) {
		c.Nonce.Store = "redis"
	}), stores.WithRedis(redisstore.Config{Addrs: []string{"127.0.0.1:1"}}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nonce.store")
}

func TestOpenDiskSharesOneFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	diskCfg := func(c *replayguard.Config) { c.Nonce.Store = "disk"; c.Idempotency.Store = "disk" }
	s, err := stores.Open(ctx, cfg(diskCfg), stores.WithDisk(disk.Config{Path: dir}))
	require.NoError(t, err)
	assert.Equal(t, []string{"nonce:disk", "idempotency:disk"}, s.Names)
	require.NotNil(t, s.Disk())
	assert.Equal(t, dir, s.Disk().Path())
	assert.True(t, disk.Exists(dir))
	require.NoError(t, s.Ping(ctx))
	e := nonce.Entry{Scope: "a", Key: "n-0123456789abcdef", Timestamp: time.Now(), Expires: time.Now().Add(time.Minute)}
	require.NoError(t, s.Nonce.Add(ctx, e))
	require.NoError(t, s.Close())

	s, err = stores.Open(ctx, cfg(diskCfg), stores.WithDisk(disk.Config{Path: dir}))
	require.NoError(t, err, "the directory is free again once the set closed")
	require.ErrorIs(t, s.Nonce.Add(ctx, e), nonce.ErrReplayed, "the nonce outlived the stores that recorded it")
	require.NoError(t, s.Close())
}

func TestOpenDiskNeedsAPathAndExactMode(t *testing.T) {
	_, err := stores.Open(context.Background(), cfg(func(c *replayguard.Config) { c.Idempotency.Store = "disk" }))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "disk.path")

	c := cfg(func(c *replayguard.Config) { c.Nonce.Store = "disk"; c.Nonce.Mode = "bloom" })
	err = c.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nonce.store")
	assert.Contains(t, err.Error(), "bloom")
}

// NonceFor gives a configuration differing in its nonce mode or window
// the store its settings shape: the Set's own for an exact store (each
// entry keeps its expiry), one instance per Bloom sizing and window,
// closed with the Set.
func TestNonceForSharesWhatTheSettingsAllow(t *testing.T) {
	ctx := context.Background()
	s, err := stores.Open(ctx, cfg(nil))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })

	longer := cfg(func(c *replayguard.Config) { c.Timestamp.Tolerance = replayguard.Duration(time.Hour) })
	n, err := s.NonceFor(ctx, longer)
	require.NoError(t, err)
	assert.Same(t, s.Nonce, n, "an exact store serves every window")

	bloomCfg := func(tolerance time.Duration) replayguard.Config {
		return cfg(func(c *replayguard.Config) {
			c.Nonce.Mode, c.Nonce.Capacity = replayguard.ModeBloom, 10000
			c.Timestamp.Tolerance = replayguard.Duration(tolerance)
		})
	}
	b1, err := s.NonceFor(ctx, bloomCfg(time.Minute))
	require.NoError(t, err)
	assert.IsType(t, &bloom.Memory{}, b1)
	again, err := s.NonceFor(ctx, bloomCfg(time.Minute))
	require.NoError(t, err)
	assert.Same(t, b1, again, "one instance per settings")
	b2, err := s.NonceFor(ctx, bloomCfg(2*time.Minute))
	require.NoError(t, err)
	assert.NotSame(t, b1, b2, "another window sizes another filter")

	e := nonce.Entry{Scope: "a", Key: "n-0123456789abcdef", Timestamp: time.Now(), Expires: time.Now().Add(time.Minute)}
	require.NoError(t, b1.Add(ctx, e))
	require.ErrorIs(t, b1.Add(ctx, e), nonce.ErrReplayed)
	require.NoError(t, s.Nonce.Add(ctx, e), "the instances keep apart")
	require.NoError(t, s.Ping(ctx))
}
