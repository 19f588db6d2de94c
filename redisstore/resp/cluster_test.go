package resp_test

import (
	"context"
	"crypto/sha256"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/redisstore"
	"github.com/replayguard/replayguard/redisstore/layout"
	"github.com/replayguard/replayguard/redisstore/redistest"
	"github.com/replayguard/replayguard/redisstore/resp"
)

// TestCluster runs the Cluster tests on one 3+3 cluster, the resp Client
// given a single master's address: a slot migration (ASK, then MOVED),
// routing by the slot map, the conformance suites, the stores shared with
// go-redis's Cluster client, then a master failover.
func TestCluster(t *testing.T) {
	t.Parallel()
	start := time.Now()
	cl := redistest.StartCluster(t)
	t.Logf("cluster of 3 masters and 3 replicas ready in %v", time.Since(start).Round(time.Millisecond))
	seed := cl.Masters()[0]
	rc := newClient(t, resp.Options{Addr: seed.Addr()})
	gc := newGoRedis(t, cl.Addrs()...)

	t.Run("Ask", func(t *testing.T) { ask(t, cl, rc, gc) })
	t.Run("RoutedBySlotMap", func(t *testing.T) { routedBySlotMap(t, cl, seed) })
	t.Run("Conformance", func(t *testing.T) { conformance(t, rc) })
	t.Run("AcrossTransports", func(t *testing.T) { across(t, rc, gc) })
	t.Run("UnreachableAddr", func(t *testing.T) {
		// A seed that is down: the next of ClusterAddrs is asked.
		dead := redistest.Start(t)
		deadAddr := dead.Addr()
		dead.Kill()
		c := newClient(t, resp.Options{Addr: deadAddr, ClusterAddrs: cl.Addrs()})
		n := redisstore.NewNonce(c, redisstore.WithKeyPrefix(uniquePrefix()), redisstore.WithTimeout(slow))
		for i := 0; i < 50; i++ {
			e := entry(uuid.NewString())
			require.NoError(t, n.Add(context.Background(), e))
			require.ErrorIs(t, n.Add(context.Background(), e), nonce.ErrReplayed)
		}
	})
	t.Run("Failover", func(t *testing.T) { failover(t, cl, seed, rc) })
}

// ask migrates the slot of a nonce key from one master to another while
// both stores use it: during the migration new keys are created on the
// importing node by ASK redirects (ASKING first), and both transports see
// them; once the slot has moved, MOVED leads there.
func ask(t *testing.T, cl *redistest.Cluster, rc *resp.Client, gc redisstore.Client) {
	ctx := context.Background()
	prefix := uniquePrefix()
	keys := layout.Keys{Prefix: prefix}
	e := entry("migrating")
	key := keys.Nonce(e.Scope, e.Key)
	slot := resp.Slot(key)
	src := cl.MasterOfSlot(slot)
	var dst *redistest.Server
	for _, m := range cl.Masters() {
		if m != src {
			dst = m
			break
		}
	}
	require.NotNil(t, dst)
	id := func(s *redistest.Server) string {
		v, err := s.Do("CLUSTER", "MYID")
		require.NoError(t, err)
		return v
	}
	srcID, dstID := id(src), id(dst)
	s := strconv.Itoa(slot)
	_, err := dst.Do("CLUSTER", "SETSLOT", s, "IMPORTING", srcID)
	require.NoError(t, err)
	_, err = src.Do("CLUSTER", "SETSLOT", s, "MIGRATING", dstID)
	require.NoError(t, err)

	rn := redisstore.NewNonce(rc, redisstore.WithKeyPrefix(prefix), redisstore.WithTimeout(slow))
	gn := redisstore.NewNonce(gc, redisstore.WithKeyPrefix(prefix), redisstore.WithTimeout(slow))
	require.NoError(t, rn.Add(ctx, e), "created on the importing node after ASK")
	_, err = src.Do("EXISTS", key)
	require.EqualError(t, err, "ASK "+s+" "+dst.Addr(), "absent from the migrating node, which redirects")
	require.ErrorIs(t, rn.Add(ctx, e), nonce.ErrReplayed)
	require.ErrorIs(t, gn.Add(ctx, e), nonce.ErrReplayed, "go-redis follows the same ASK")

	// A script on a key of the migrating slot: ASK, then NOSCRIPT on the
	// importing node, then EVAL there.
	ri := redisstore.NewIdempotency(rc, redisstore.WithKeyPrefix(prefix), redisstore.WithTimeout(slow))
	var ik string
	for i := 0; ik == ""; i++ {
		k := "p\x00" + strconv.Itoa(i)
		if resp.Slot(keys.Idempotency(k)) == slot {
			ik = k
		}
		require.Less(t, i, 1<<22, "no idempotency key in slot %d", slot)
	}
	fp := sha256.Sum256([]byte("r"))
	c, err := ri.Claim(ctx, ik, fp, time.Minute)
	require.NoError(t, err)
	require.True(t, c.Acquired)
	require.NoError(t, ri.Complete(ctx, ik, c.Token, &idempotency.Response{Status: 202, Body: []byte("moved")}, time.Minute))

	for _, m := range cl.Masters() {
		_, err := m.Do("CLUSTER", "SETSLOT", s, "NODE", dstID)
		require.NoError(t, err, m.Addr())
	}
	require.ErrorIs(t, rn.Add(ctx, e), nonce.ErrReplayed, "MOVED to the new owner")
	gi := redisstore.NewIdempotency(gc, redisstore.WithKeyPrefix(prefix), redisstore.WithTimeout(slow))
	require.Eventually(t, func() bool {
		c, err := gi.Claim(ctx, ik, fp, time.Minute)
		return err == nil && !c.Acquired && c.Existing.Response != nil && string(c.Existing.Response.Body) == "moved"
	}, 5*time.Second, 20*time.Millisecond, "go-redis reads the record on the new owner")
	c, err = ri.Claim(ctx, ik, fp, time.Minute)
	require.NoError(t, err)
	require.False(t, c.Acquired)
	assert.Equal(t, 202, c.Existing.Response.Status)
}

// The Client routes by the slot map it loads from the seed: after at
// most one MOVED before the map is in, commands for keys of many slots go
// straight to their masters.
func routedBySlotMap(t *testing.T, cl *redistest.Cluster, seed *redistest.Server) {
	ctx := context.Background()
	c := newClient(t, resp.Options{Addr: seed.Addr()})
	var keys []string
	for i := 0; len(keys) < 50; i++ {
		k := "route-" + strconv.Itoa(i)
		if cl.MasterOf(k) != seed {
			keys = append(keys, k)
		}
	}
	moved := func() int {
		info, err := seed.Do("INFO", "errorstats")
		require.NoError(t, err)
		n, _ := strconv.Atoi(strings.TrimPrefix(redistest.InfoField(info, "errorstat_MOVED"), "count="))
		return n
	}
	before := moved()
	_, err := c.Do(ctx, "SET", keys[0], "first")
	require.NoError(t, err)
	assert.LessOrEqual(t, moved()-before, 1, "the first call, sent before the map is in")
	require.Eventually(t, func() bool {
		return redistest.CommandCalls(mustInfo(t, seed))["cluster|slots"] > 0
	}, 5*time.Second, 10*time.Millisecond, "the map is asked of the seed")
	// The map is installed right after the reply; a MOVED before that
	// would be the last.
	time.Sleep(50 * time.Millisecond)
	before = moved()
	for i, k := range keys {
		_, err := c.Do(ctx, "SET", k, i)
		require.NoError(t, err)
		v, err := c.Do(ctx, "GET", k)
		require.NoError(t, err)
		assert.Equal(t, strconv.Itoa(i), v)
	}
	assert.Equal(t, 0, moved()-before, "every key straight to its master, %d slots", len(keys))
}

// A master other than the seed is killed; once its replica is promoted
// the same Client serves its slots again, through the seed's MOVED.
func failover(t *testing.T, cl *redistest.Cluster, seed *redistest.Server, rc *resp.Client) {
	ctx := context.Background()
	prefix := uniquePrefix()
	keys := layout.Keys{Prefix: prefix}
	n := redisstore.NewNonce(rc, redisstore.WithKeyPrefix(prefix), redisstore.WithTimeout(500*time.Millisecond))
	var victim *redistest.Server
	for _, m := range cl.Masters() {
		if m != seed && len(cl.Replicas(m)) > 0 {
			victim = m
			break
		}
	}
	require.NotNil(t, victim)
	ranges := cl.Slots(victim)
	onVictim := func() nonce.Entry {
		for {
			e := entry(uuid.NewString())
			s := resp.Slot(keys.Nonce(e.Scope, e.Key))
			for _, r := range ranges {
				if s >= r[0] && s <= r[1] {
					return e
				}
			}
		}
	}
	// A second Client whose Addr is the master about to die.
	seededAtVictim := newClient(t, resp.Options{Addr: victim.Addr(), ClusterAddrs: cl.Addrs()})
	n2 := redisstore.NewNonce(seededAtVictim, redisstore.WithKeyPrefix(prefix), redisstore.WithTimeout(500*time.Millisecond))
	e := onVictim()
	require.NoError(t, n.Add(ctx, e))
	require.ErrorIs(t, n2.Add(ctx, e), nonce.ErrReplayed)
	victim.Kill()
	start := time.Now()
	for _, s := range []*redisstore.Nonce{n, n2} {
		var err error
		for time.Since(start) < 30*time.Second {
			if err = s.Add(ctx, onVictim()); err == nil {
				break
			}
			require.ErrorIs(t, err, nonce.ErrUnavailable)
			time.Sleep(50 * time.Millisecond)
		}
		require.NoError(t, err, "the promoted replica serves the dead master's slots")
		t.Logf("served again %v after the kill", time.Since(start).Round(time.Millisecond))
	}
}
