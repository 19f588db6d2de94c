package goredis_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
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
	// Sentinel's master is one server: a covered request's nonce and
	// claim are one script run, exact or Bloom.
	require.True(t, c.Standalone())
	idempotencytest.RunNonceClaimer(t, func(t *testing.T) idempotency.NonceClaimer {
		o := []redisstore.Option{redisstore.WithKeyPrefix(uniquePrefix(t)), redisstore.WithTimeout(slow)}
		return redisstore.NewIdempotency(c, append(o, redisstore.WithNonceStore(redisstore.NewNonce(c, o...)))...)
	})
	idempotencytest.RunNonceClaimer(t, func(t *testing.T) idempotency.NonceClaimer {
		o := []redisstore.Option{redisstore.WithKeyPrefix(uniquePrefix(t)), redisstore.WithTimeout(slow)}
		b, err := redisstore.NewBloomNonce(c, 100_000, 1e-9, 10*time.Minute, o...)
		require.NoError(t, err)
		return redisstore.NewIdempotency(c, append(o, redisstore.WithNonceStore(b))...)
	})

	// Sentinel may have failed over already on a busy machine: ask it who
	// is master now.
	addr, err := sentinel.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "rgmaster")
	require.NoError(t, err)
	if strings.ReplaceAll(addr, "\n", ":") != master.Addr() {
		master, replica = replica, master
	}
	// One call reaches the master for a covered request's nonce and claim.
	n0 := redisstore.NewNonce(c, redisstore.WithKeyPrefix("joint"), redisstore.WithTimeout(slow))
	j := redisstore.NewIdempotency(c, redisstore.WithKeyPrefix("joint"), redisstore.WithTimeout(slow), redisstore.WithNonceStore(n0))
	fp := sha256.Sum256([]byte("req"))
	joint := func(i int) {
		now := time.Now()
		e := nonce.Entry{Scope: "p", Key: "joint-0123456789ab-" + strconv.Itoa(i), Timestamp: now, Expires: now.Add(time.Minute)}
		got, nerr, cerr := j.ClaimWithNonce(ctx, e, "p", "p\x00k"+strconv.Itoa(i), fp, time.Minute)
		require.NoError(t, nerr)
		require.NoError(t, cerr)
		require.True(t, got.Acquired)
	}
	joint(0) // loads the script
	mon := master.Monitor(t)
	mon.Calls()
	joint(1)
	var calls []string
	for _, name := range mon.Calls() {
		if name == "set" || name == "evalsha" || name == "eval" {
			calls = append(calls, name)
		}
	}
	assert.Equal(t, []string{"evalsha"}, calls)

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
