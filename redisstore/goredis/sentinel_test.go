package goredis_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/confval"
	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/idempotency/idempotencytest"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/nonce/noncetest"
	"github.com/replayguard/replayguard/redisstore"
	"github.com/replayguard/replayguard/redisstore/goredis"
	"github.com/replayguard/replayguard/redisstore/layout"
	"github.com/replayguard/replayguard/redisstore/redistest"
)

// With master_name the client asks Sentinel for the master, and follows it
// when Sentinel promotes the replica.
func TestSentinel(t *testing.T) {
	t.Parallel()
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	sentinel := redistest.StartSentinel(t, "rgmaster", master)
	c, err := goredis.New(redisstore.Config{Addrs: []string{sentinel.Addr()}, MasterName: "rgmaster",
		Timeout: confval.Duration(slow)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	require.Eventually(t, func() bool { return c.Unwrap().Ping(ctx).Err() == nil }, 10*time.Second, 50*time.Millisecond)

	noncetest.Run(t, func(t *testing.T) nonce.Store {
		return redisstore.NewNonce(c, redisstore.WithKeyPrefix(uniquePrefix(t)), redisstore.WithTimeout(slow))
	})
	idempotencytest.Run(t, func(t *testing.T) idempotency.Store {
		return redisstore.NewIdempotency(c, redisstore.WithKeyPrefix(uniquePrefix(t)), redisstore.WithTimeout(slow))
	})

	// Sentinel may have failed over already on a busy machine: ask it who
	// is master now.
	addr, err := sentinel.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "rgmaster")
	require.NoError(t, err)
	if strings.ReplaceAll(addr, "\n", ":") != master.Addr() {
		master, replica = replica, master
	}
	n := redisstore.NewNonce(c, redisstore.WithTimeout(slow))
	e := nonce.Entry{Scope: "k", Key: "before-failover-0123", Timestamp: time.Now(), Expires: time.Now().Add(time.Minute)}
	require.NoError(t, n.Add(ctx, e))
	key := layout.Keys{}.Nonce(e.Scope, e.Key)
	require.Eventually(t, func() bool {
		v, err := replica.Do("EXISTS", key)
		return err == nil && v == "1"
	}, 5*time.Second, 10*time.Millisecond, "the replica receives the nonce")
	master.Kill()
	killed := time.Now()
	err = n.Add(ctx, e)
	for errors.Is(err, nonce.ErrUnavailable) && time.Since(killed) < 30*time.Second {
		time.Sleep(50 * time.Millisecond)
		err = n.Add(ctx, e)
	}
	require.ErrorIs(t, err, nonce.ErrReplayed, "the promoted replica has the nonce")
	role, err := replica.Do("ROLE")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(role, "master"), role)
	t.Logf("Sentinel promoted the replica; the client followed %v after the kill", time.Since(killed).Round(time.Millisecond))
}
