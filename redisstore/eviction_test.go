package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/redisstore"
	"github.com/replayguard/replayguard/redisstore/redistest"
)

func TestEvictionWarning(t *testing.T) {
	ctx := context.Background()
	t.Run("noeviction", func(t *testing.T) {
		srv := redistest.Start(t)
		c := newClient(t, time.Second, srv.Addr())
		p, err := redisstore.EvictionPolicy(ctx, c)
		require.NoError(t, err)
		assert.Equal(t, "noeviction", p)
		assert.Empty(t, redisstore.EvictionWarning(ctx, c))
	})
	t.Run("allkeys-lru", func(t *testing.T) {
		srv := redistest.Start(t, redistest.WithArgs("--maxmemory-policy", "allkeys-lru"))
		c := newClient(t, time.Second, srv.Addr())
		p, err := redisstore.EvictionPolicy(ctx, c)
		require.NoError(t, err)
		assert.Equal(t, "allkeys-lru", p)
		w := redisstore.EvictionWarning(ctx, c)
		assert.Contains(t, w, `"allkeys-lru"`)
		assert.Contains(t, w, "noeviction")
	})
	t.Run("CONFIG renamed", func(t *testing.T) {
		srv := redistest.Start(t, redistest.WithArgs("--rename-command", "CONFIG", ""))
		c := newClient(t, time.Second, srv.Addr())
		_, err := redisstore.EvictionPolicy(ctx, c)
		require.Error(t, err)
		assert.Contains(t, redisstore.EvictionWarning(ctx, c), "could not be checked")
	})
}
