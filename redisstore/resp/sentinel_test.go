package resp_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/redisstore"
	"github.com/replayguard/replayguard/redisstore/layout"
	"github.com/replayguard/replayguard/redisstore/redistest"
	"github.com/replayguard/replayguard/redisstore/resp"
)

// masterOf asks the Sentinel which of a and b is the master of name now.
func masterOf(t *testing.T, sentinel *redistest.Server, name string, a, b *redistest.Server) (master, replica *redistest.Server) {
	t.Helper()
	addr, err := sentinel.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
	require.NoError(t, err)
	if strings.ReplaceAll(addr, "\n", ":") == a.Addr() {
		return a, b
	}
	require.Equal(t, b.Addr(), strings.ReplaceAll(addr, "\n", ":"))
	return b, a
}

// addUntil adds e until it is no longer refused as unavailable, for at
// most 30 seconds, and returns the last answer.
func addUntil(ctx context.Context, n nonce.Store, e nonce.Entry) error {
	start := time.Now()
	err := n.Add(ctx, e)
	for errors.Is(err, nonce.ErrUnavailable) && time.Since(start) < 30*time.Second {
		time.Sleep(50 * time.Millisecond)
		err = n.Add(ctx, e)
	}
	return err
}

// With MasterName the client asks the Sentinels for the master (a Sentinel
// that cannot be reached is passed over), runs the stores there, and
// follows Sentinel through a switch of roles with both servers alive,
// after which the old master refuses writes as a replica, and through the
// master's death.
func TestSentinel(t *testing.T) {
	t.Parallel()
	first := redistest.Start(t)
	second := redistest.StartReplica(t, first)
	sentinel := redistest.StartSentinel(t, "rgmaster", first)
	require.Eventually(t, func() bool { return second.Info("master_link_status") == "up" }, 30*time.Second, 50*time.Millisecond, "the replica syncs")
	c := newClient(t, resp.Options{MasterName: "rgmaster", Sentinels: []string{"127.0.0.1:1", sentinel.Addr()}})
	ctx := context.Background()

	conformance(t, c)

	n := redisstore.NewNonce(c, redisstore.WithTimeout(slow))
	entry := func(key string) nonce.Entry {
		return nonce.Entry{Scope: "k", Key: key, Timestamp: time.Now(), Expires: time.Now().Add(time.Minute)}
	}
	exists := func(s *redistest.Server, e nonce.Entry) bool {
		v, err := s.Do("EXISTS", layout.Keys{}.Nonce(e.Scope, e.Key))
		return err == nil && v == "1"
	}
	master, replica := masterOf(t, sentinel, "rgmaster", first, second)
	before := entry("before-the-switch")
	require.NoError(t, n.Add(ctx, before))
	assert.True(t, exists(master, before), "written to the master Sentinel names")
	require.Eventually(t, func() bool { return exists(replica, before) }, 30*time.Second, 10*time.Millisecond)

	// A switch with both alive: the replica becomes the master, the old
	// master its replica.
	require.Eventually(t, func() bool {
		_, err := sentinel.Do("SENTINEL", "FAILOVER", "rgmaster")
		return err == nil
	}, 30*time.Second, 200*time.Millisecond, "Sentinel knows the replica")
	require.Eventually(t, func() bool {
		m, _ := masterOf(t, sentinel, "rgmaster", first, second)
		role, err := master.Do("ROLE")
		return m == replica && err == nil && strings.HasPrefix(role, "slave")
	}, 30*time.Second, 100*time.Millisecond)
	master, replica = replica, master
	require.ErrorIs(t, addUntil(ctx, n, before), nonce.ErrReplayed, "the new master has the nonce")
	switched := entry("after-the-switch")
	require.NoError(t, addUntil(ctx, n, switched))
	assert.True(t, exists(master, switched), "written to the new master")

	// The master dies: Sentinel promotes its replica.
	require.Eventually(t, func() bool { return exists(replica, switched) }, 30*time.Second, 10*time.Millisecond)
	master.Kill()
	killed := time.Now()
	require.ErrorIs(t, addUntil(ctx, n, switched), nonce.ErrReplayed, "the promoted replica has the nonce")
	role, err := replica.Do("ROLE")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(role, "master"), role)
	last := entry("after-the-death")
	require.NoError(t, n.Add(ctx, last))
	assert.True(t, exists(replica, last))
	t.Logf("the client followed the promotion %v after the kill", time.Since(killed).Round(time.Millisecond))
}

func TestSentinelOptions(t *testing.T) {
	_, err := resp.New(resp.Options{MasterName: "m"})
	require.ErrorContains(t, err, "Sentinels")
	_, err = resp.New(resp.Options{MasterName: "m", Sentinels: []string{"nope"}})
	require.ErrorContains(t, err, "Sentinels[0]")

	// No Sentinel answers: every call fails as unavailable, none hangs.
	c := newClient(t, resp.Options{MasterName: "m", Sentinels: []string{"127.0.0.1:1"}, Timeout: 200 * time.Millisecond})
	n := redisstore.NewNonce(c, redisstore.WithTimeout(200*time.Millisecond))
	start := time.Now()
	err = n.Add(context.Background(), nonce.Entry{Scope: "k", Key: "x", Timestamp: time.Now(), Expires: time.Now().Add(time.Minute)})
	require.ErrorIs(t, err, nonce.ErrUnavailable)
	assert.Less(t, time.Since(start), 2*time.Second)
}
