package resp_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/redisstore"
	"github.com/replayguard/replayguard/redisstore/layout"
	"github.com/replayguard/replayguard/redisstore/redistest"
	"github.com/replayguard/replayguard/redisstore/resp"
)

// TestClusterFailingNodes runs, on a 3+3 cluster of its own, what the
// Client does about nodes that fail or are no longer used: idle
// connections to unused nodes make room, those to a failing node are
// closed, a redirect to a node that cannot be reached is dialled once, and
// a first address that stalls (SIGSTOP) or dies (SIGKILL) costs calls
// only until its replica is promoted.
func TestClusterFailingNodes(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t)
	t.Run("IdlePoolMakesRoom", func(t *testing.T) { idlePoolMakesRoom(t, cl) })
	t.Run("FailingNodeIdleClosed", func(t *testing.T) { failingNodeIdleClosed(t, cl) })
	t.Run("RedirectTargetDialledOnce", func(t *testing.T) { redirectTargetDialledOnce(t, cl) })
	t.Run("PausedFirstAddr", func(t *testing.T) { firstAddrDown(t, cl, false) })
	t.Run("KilledFirstAddr", func(t *testing.T) { firstAddrDown(t, cl, true) })
}

// Once the idle pool is full, the connections idle the longest (to nodes
// no longer used) give way to those of the node in use, which are then
// reused rather than dialled again and again.
func idlePoolMakesRoom(t *testing.T, cl *redistest.Cluster) {
	ctx := context.Background()
	ms := cl.Masters()
	require.Len(t, ms, 3)
	c := newClient(t, resp.Options{Addr: ms[0].Addr(), PoolSize: 3})
	for _, m := range ms {
		_, err := c.Do(ctx, "SET", keyIn(cl.Slots(m), "idle"), "x")
		require.NoError(t, err)
	}
	// One idle connection per master; from now on only one master is
	// used, three connections at a time.
	target := ms[1]
	key := keyIn(cl.Slots(target), "busy")
	before := totalConns(t, target)
	for round := 0; round < 10; round++ {
		var wg sync.WaitGroup
		for i := 0; i < 3; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := c.Do(ctx, "BLPOP", key, "0.01")
				assert.NoError(t, err)
			}()
		}
		wg.Wait()
	}
	dials := totalConns(t, target) - before - 1 // the INFO's own
	assert.LessOrEqual(t, dials, 4, "three connections dialled, then reused (a slot map load may take one)")
}

// A call that times out on a stalled node closes the other idle
// connections to it, which would time out as well.
func failingNodeIdleClosed(t *testing.T, cl *redistest.Cluster) {
	ctx := context.Background()
	ms := cl.Masters()
	require.Len(t, ms, 3)
	victim := ms[2]
	c := newClient(t, resp.Options{Addr: ms[0].Addr(), PoolSize: 4})
	key := keyIn(cl.Slots(victim), "stall")
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Do(ctx, "BLPOP", key, "0.05")
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	require.GreaterOrEqual(t, normalClients(t, victim), 5, "four idle connections, and the CLIENT LIST's own")

	// Shorter than the cluster's node timeout: no failover.
	victim.Pause()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := c.Do(short, "GET", key)
	cancel()
	victim.Resume()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Eventually(t, func() bool { return normalClients(t, victim) == 1 }, 5*time.Second, 20*time.Millisecond,
		"the timed-out connection discarded, the idle ones closed")
	_, err = c.Do(ctx, "GET", key)
	require.NoError(t, err)
}

// A slot in migration sends its new keys to the importing node by ASK; when
// that node cannot be reached (stopped, so that the dial's AUTH times out)
// the call asks another node, whose redirects lead back to it, and fails
// without dialling it again although it is also in ClusterAddrs.
func redirectTargetDialledOnce(t *testing.T, cl *redistest.Cluster) {
	ctx := context.Background()
	ms := cl.Masters()
	require.Len(t, ms, 3)
	src, dst, other := ms[0], ms[1], ms[2]
	// The default user has no password: AUTH default <anything> passes,
	// and makes each dial a round trip.
	c := newClient(t, resp.Options{
		Addr: src.Addr(), ClusterAddrs: []string{dst.Addr(), other.Addr()},
		Username: "default", Password: "unused", Timeout: time.Second,
	})
	key := keyIn(cl.Slots(src), "ask")
	_, err := c.Do(ctx, "GET", key)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return redistest.CommandCalls(mustInfo(t, src))["cluster|slots"] > 0
	}, 5*time.Second, 10*time.Millisecond, "the slot map is in")
	time.Sleep(300 * time.Millisecond) // past the least time between two loads

	slot := strconv.Itoa(resp.Slot(key))
	id := func(s *redistest.Server) string {
		v, err := s.Do("CLUSTER", "MYID")
		require.NoError(t, err)
		return v
	}
	_, err = dst.Do("CLUSTER", "SETSLOT", slot, "IMPORTING", id(src))
	require.NoError(t, err)
	_, err = src.Do("CLUSTER", "SETSLOT", slot, "MIGRATING", id(dst))
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = src.Do("CLUSTER", "SETSLOT", slot, "STABLE")
		_, _ = dst.Do("CLUSTER", "SETSLOT", slot, "STABLE")
	})

	before := totalConns(t, dst)
	dst.Pause()
	_, err = c.Do(ctx, "SET", key, "v")
	dst.Resume()
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	assert.Contains(t, err.Error(), "AUTH on "+dst.Addr())

	// The stopped node accepts what the kernel queued for it once resumed;
	// each INFO below is a connection too.
	infos := 0
	dials := 0
	count := func() bool {
		infos++
		dials = totalConns(t, dst) - before - infos
		return dials >= 1
	}
	require.Eventually(t, count, 5*time.Second, 20*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	count()
	assert.Equal(t, 1, dials, "the unreachable ASK target is dialled once")
}

// The Client's Addr is a master with a replica and
// ClusterAddrs the other nodes; that master stalls (SIGSTOP) or dies
// (SIGKILL) under a steady trickle of nonce Adds. Once the replica is
// promoted, the same Client serves every slot again: rounds of 30
// concurrent Adds, a third of them in the lost master's slots, are all
// served again within 20 s, and from then on.
func firstAddrDown(t *testing.T, cl *redistest.Cluster, kill bool) {
	require.NoError(t, cl.WaitHealthy(30*time.Second))
	var victim *redistest.Server
	for _, m := range cl.Masters() {
		if len(cl.Replicas(m)) > 0 {
			victim = m
			break
		}
	}
	require.NotNil(t, victim, "a master with a replica")
	replica := cl.Replicas(victim)[0]
	ranges := cl.Slots(victim)
	var others []string
	for _, a := range cl.Addrs() {
		if a != victim.Addr() {
			others = append(others, a)
		}
	}
	const timeout = 500 * time.Millisecond
	c := newClient(t, resp.Options{Addr: victim.Addr(), ClusterAddrs: others, Timeout: timeout})
	n := redisstore.NewNonce(c, redisstore.WithKeyPrefix(uniquePrefix()), redisstore.WithTimeout(timeout))
	ctx := context.Background()

	round := func() int {
		var served atomic.Int64
		var wg sync.WaitGroup
		for i := 0; i < 30; i++ {
			e := entry(uuid.NewString())
			if i < 10 {
				e = entryIn(n.Keys(), ranges)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := n.Add(ctx, e)
				if err == nil {
					served.Add(1)
					return
				}
				assert.ErrorIs(t, err, nonce.ErrUnavailable)
				assert.NotErrorIs(t, err, nonce.ErrReplayed, "a new nonce is never a replay")
			}()
		}
		wg.Wait()
		return int(served.Load())
	}
	require.Eventually(t, func() bool { return round() == 30 }, 10*time.Second, 50*time.Millisecond, "served before")

	what := "pause"
	if kill {
		what = "kill"
		victim.Kill()
	} else {
		victim.Pause()
		t.Cleanup(victim.Resume)
	}
	start := time.Now()
	promoted, recovered := time.Duration(-1), time.Duration(-1)
	var rounds []string
	for time.Since(start) < 20*time.Second {
		if promoted < 0 && role(t, replica) == "master" {
			promoted = time.Since(start)
		}
		got := round()
		rounds = append(rounds, strconv.Itoa(got))
		if got == 30 && promoted >= 0 {
			recovered = time.Since(start)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("served per round of 30 after the %s: %s", what, strings.Join(rounds, " "))
	require.GreaterOrEqual(t, recovered, time.Duration(0), "no round fully served within 20 s of the %s", what)
	t.Logf("replica seen promoted %v after the %s (checked between rounds); every Add served again %v after the %s",
		promoted.Round(time.Millisecond), what, recovered.Round(time.Millisecond), what)
	for i := 0; i < 3; i++ {
		require.Equal(t, 30, round(), "served from then on")
	}
	if !kill {
		victim.Resume()
		require.NoError(t, cl.WaitHealthy(30*time.Second), "the old master rejoins as a replica")
	}
}

// keyIn returns a key whose slot is in one of ranges.
func keyIn(ranges [][2]int, prefix string) string {
	for i := 0; ; i++ {
		k := prefix + "-" + strconv.Itoa(i)
		if inRanges(resp.Slot(k), ranges) {
			return k
		}
	}
}

// entryIn returns a new nonce entry whose key's slot is in one of ranges.
func entryIn(keys layout.Keys, ranges [][2]int) nonce.Entry {
	for {
		e := entry(uuid.NewString())
		if inRanges(resp.Slot(keys.Nonce(e.Scope, e.Key)), ranges) {
			return e
		}
	}
}

func inRanges(slot int, ranges [][2]int) bool {
	for _, r := range ranges {
		if slot >= r[0] && slot <= r[1] {
			return true
		}
	}
	return false
}

// totalConns returns the connections s has accepted, this INFO's
// included.
func totalConns(t *testing.T, s *redistest.Server) int {
	t.Helper()
	n, err := strconv.Atoi(s.Info("total_connections_received"))
	require.NoError(t, err)
	return n
}

// normalClients returns the client connections of s, not replicas', the
// CLIENT LIST's own included.
func normalClients(t *testing.T, s *redistest.Server) int {
	t.Helper()
	list, err := s.Do("CLIENT", "LIST", "TYPE", "normal")
	require.NoError(t, err)
	n := 0
	for _, line := range strings.Split(list, "\n") {
		if strings.TrimSpace(line) != "" {
			n++
		}
	}
	return n
}

// role returns "master" or "slave".
func role(t *testing.T, s *redistest.Server) string {
	t.Helper()
	info, err := s.Do("INFO", "replication")
	require.NoError(t, err)
	return redistest.InfoField(info, "role")
}
