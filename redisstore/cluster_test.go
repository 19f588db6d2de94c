package redisstore_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/idempotency/idempotencytest"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/nonce/noncetest"
	"github.com/replayguard/replayguard/redisstore"
	"github.com/replayguard/replayguard/redisstore/layout"
	"github.com/replayguard/replayguard/redisstore/redistest"
)

// TestCluster runs everything that needs a Cluster on one 3+3 cluster: the
// conformance suites, the hash-tag measurement, then a master failover.
func TestCluster(t *testing.T) {
	t.Parallel()
	start := time.Now()
	cl := redistest.StartCluster(t)
	t.Logf("cluster of 3 masters and 3 replicas ready in %v", time.Since(start).Round(time.Millisecond))
	c := newClient(t, slow, cl.Addrs()...)

	t.Run("Conformance", func(t *testing.T) {
		for name, newStore := range nonceStores(c) {
			t.Run("nonce/"+name, func(t *testing.T) {
				t.Parallel()
				noncetest.Run(t, newStore)
			})
		}
		for name, tag := range map[string]layout.Tagging{"key-tag": layout.TagKey, "principal-tag": layout.TagPrincipal} {
			t.Run("idempotency/"+name, func(t *testing.T) {
				t.Parallel()
				idempotencytest.Run(t, func(t *testing.T) idempotency.Store {
					return redisstore.NewIdempotency(c, redisstore.WithKeyPrefix(uniquePrefix(t)), redisstore.WithTagging(tag), redisstore.WithTimeout(slow))
				})
			})
		}
	})

	t.Run("NonceClaimer", func(t *testing.T) {
		for _, tag := range []layout.Tagging{layout.TagKey, layout.TagPrincipal} {
			for name, newClaimer := range jointStores(c, redisstore.WithTagging(tag)) {
				t.Run(tag.String()+"/"+name, func(t *testing.T) {
					t.Parallel()
					idempotencytest.RunNonceClaimer(t, newClaimer)
				})
			}
		}
	})
	t.Run("JointWriteByTagging", func(t *testing.T) { jointByTagging(t, cl, c) })
	t.Run("HashTags", func(t *testing.T) { measureHashTags(t, cl, c) })
	t.Run("Failover", func(t *testing.T) { failover(t, cl, c) })
	t.Run("FailoverLosesWhatTheReplicaMissed", func(t *testing.T) { staleReplica(t, cl, c) })
}

// staleReplica shows what asynchronous replication can lose: with a
// master's replica cut off (stalled by SIGSTOP, its link dropped), nonces the
// master acknowledges are not replicated; when the master dies and the
// replica takes over, those nonces are forgotten and a replay of them would
// be accepted.
func staleReplica(t *testing.T, cl *redistest.Cluster, c redisstore.Client) {
	ctx := context.Background()
	keys := layout.Keys{Prefix: "lag"}
	n := redisstore.NewNonce(c, redisstore.WithKeyPrefix("lag"), redisstore.WithTimeout(300*time.Millisecond))
	var master, replica *redistest.Server
	for _, m := range cl.Masters() {
		if r := cl.Replicas(m); len(r) > 0 {
			master, replica = m, r[0]
			break
		}
	}
	require.NotNil(t, master, "a master with a replica is left")
	ranges := cl.Slots(master)
	var entries []nonce.Entry
	for i := 0; len(entries) < 50; i++ {
		now := time.Now()
		e := nonce.Entry{Scope: "k", Key: "lag-" + strconv.Itoa(i), Timestamp: now, Expires: now.Add(time.Minute)}
		slot := redistest.Slot(keys.Nonce(e.Scope, e.Key))
		for _, r := range ranges {
			if slot >= r[0] && slot <= r[1] {
				entries = append(entries, e)
				break
			}
		}
	}
	// Stall the replica and drop its link: what the master acknowledges from
	// now on reaches no replica, as during a lag or a partition.
	replica.Pause()
	_, err := master.Do("CLIENT", "KILL", "TYPE", "replica")
	require.NoError(t, err)
	for _, e := range entries {
		require.NoError(t, n.Add(ctx, e), "the master acknowledges")
	}
	master.Kill()
	replica.Resume()
	killedAt := time.Now()
	lost := 0
	for _, e := range entries {
		err := n.Add(ctx, e)
		for errors.Is(err, nonce.ErrUnavailable) && time.Since(killedAt) < 20*time.Second {
			time.Sleep(20 * time.Millisecond)
			err = n.Add(ctx, e)
		}
		require.NotErrorIs(t, err, nonce.ErrUnavailable, "the replica takes over")
		if err == nil {
			lost++
		}
	}
	t.Logf("a replica stalled while its master acknowledged %d nonces took over after %v and had lost %d of them",
		len(entries), time.Since(killedAt).Round(time.Millisecond), lost)
	assert.Equal(t, len(entries), lost, "everything the replica missed is lost")
}

// measureHashTags sends one principal's nonces with each tagging and reports
// how the keys spread over the masters and the checks per second.
func measureHashTags(t *testing.T, cl *redistest.Cluster, c redisstore.Client) {
	ctx := context.Background()
	for _, tag := range []layout.Tagging{layout.TagKey, layout.TagPrincipal} {
		prefix := "tag-" + tag.String()
		n := redisstore.NewNonce(c, redisstore.WithKeyPrefix(prefix), redisstore.WithTagging(tag), redisstore.WithTimeout(slow))
		var done atomic.Int64
		var wg sync.WaitGroup
		const d = 700 * time.Millisecond
		deadline := time.Now().Add(d)
		for w := 0; w < 32; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; time.Now().Before(deadline); i++ {
					now := time.Now()
					e := nonce.Entry{Scope: "one-principal", Key: fmt.Sprintf("%d-%d", w, i), Timestamp: now, Expires: now.Add(time.Minute)}
					if assert.NoError(t, n.Add(ctx, e)) {
						done.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		var spread []string
		var counts []int
		for _, m := range cl.Masters() {
			keys, err := m.Do("EVAL", "return #redis.call('KEYS', ARGV[1])", "0", prefix+":*")
			require.NoError(t, err)
			k, _ := strconv.Atoi(keys)
			counts = append(counts, k)
			spread = append(spread, strconv.Itoa(k))
		}
		sort.Ints(counts)
		t.Logf("tagging by %s, one principal, 32 goroutines: %.0f checks/s; keys per master: %s",
			tag, float64(done.Load())/d.Seconds(), strings.Join(spread, " / "))
		if tag == layout.TagPrincipal {
			assert.Zero(t, counts[0]+counts[1], "one principal, one slot")
		} else {
			assert.Positive(t, counts[0], "spread over every master")
		}
	}
}

// failover kills the master of one third of the slots under load: its
// replica is promoted, checks on its slots resume without a new client, the
// other masters' slots keep working throughout, and the writes the replica
// had not received when its master died are counted.
func failover(t *testing.T, cl *redistest.Cluster, c redisstore.Client) {
	ctx := context.Background()
	const timeout = time.Second
	keys := layout.Keys{Prefix: "fo"}
	exact := redisstore.NewNonce(c, redisstore.WithKeyPrefix("fo"), redisstore.WithTimeout(timeout))
	bloomStore, err := redisstore.NewBloomNonce(c, 1_000_000, 1e-9, 10*time.Minute, redisstore.WithKeyPrefix("fo"), redisstore.WithTimeout(timeout))
	require.NoError(t, err)
	idem := redisstore.NewIdempotency(c, redisstore.WithKeyPrefix("fo"), redisstore.WithTimeout(timeout))

	for _, k := range []string{"fo:n:{0123abcd}", "{user1000}.following", "foo{}{bar}", "foo{{bar}}zap", "rg:b:{28333333.7}:60000:0:1:2"} {
		r, err := cl.Nodes[0].Do("CLUSTER", "KEYSLOT", k)
		require.NoError(t, err)
		require.Equal(t, r, strconv.Itoa(redistest.Slot(k)), "redistest.Slot(%q)", k)
	}

	victim := cl.MasterOf(keys.Nonce("k", "probe"))
	ranges := cl.Slots(victim)
	onVictim := func(key string) bool {
		slot := redistest.Slot(key)
		for _, r := range ranges {
			if slot >= r[0] && slot <= r[1] {
				return true
			}
		}
		return false
	}
	// An idempotency record on the victim, completed before the kill.
	idemKey := ""
	for i := 0; idemKey == ""; i++ {
		if k := fmt.Sprintf("p\x00op-%d", i); onVictim(keys.Idempotency(k)) {
			idemKey = k
		}
	}
	fp := sha256.Sum256([]byte("fo"))
	claim, err := idem.Claim(ctx, idemKey, fp, time.Minute)
	require.NoError(t, err)
	require.NoError(t, idem.Complete(ctx, idemKey, claim.Token, &idempotency.Response{Status: 200, Body: []byte("kept")}, time.Hour))

	type result struct {
		at       time.Time
		e        nonce.Entry
		bloom    bool
		err      error
		onVictim bool
	}
	var mu sync.Mutex
	var results []result
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var seq atomic.Int64
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := seq.Add(1)
				now := time.Now()
				e := nonce.Entry{Scope: "k", Key: "fo-" + strconv.FormatInt(i, 10), Timestamp: now, Expires: now.Add(time.Minute)}
				useBloom := w%4 == 3
				var err error
				if useBloom {
					err = bloomStore.Add(ctx, e)
				} else {
					err = exact.Add(ctx, e)
				}
				r := result{at: time.Now(), e: e, bloom: useBloom, err: err}
				if !useBloom {
					r.onVictim = onVictim(keys.Nonce(e.Scope, e.Key))
				}
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
				if err != nil {
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
	}
	snapshot := func() []result {
		mu.Lock()
		defer mu.Unlock()
		return append([]result(nil), results...)
	}

	time.Sleep(time.Second)
	require.NotEmpty(t, cl.Replicas(victim))
	cl.KillMaster(keys.Nonce("k", "probe"))
	killedAt := time.Now()

	var resumed time.Duration
	for resumed == 0 && time.Since(killedAt) < 20*time.Second {
		time.Sleep(20 * time.Millisecond)
		for _, r := range snapshot() {
			if r.onVictim && r.err == nil && r.at.After(killedAt) {
				resumed = r.at.Sub(killedAt)
				break
			}
		}
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	require.NotZero(t, resumed, "the victim's slots answer again after the failover")

	var victimErrs, othersOK, othersErr, bloomOK, bloomErr int
	var acceptedOnVictim []result
	for _, r := range results {
		switch {
		case r.bloom:
			if r.err == nil {
				bloomOK++
			} else {
				bloomErr++
			}
		case r.onVictim && r.at.Before(killedAt) && r.err == nil:
			acceptedOnVictim = append(acceptedOnVictim, r)
		case r.onVictim && r.at.After(killedAt) && r.at.Before(killedAt.Add(resumed)):
			if r.err != nil {
				victimErrs++
			}
		case !r.onVictim && r.at.After(killedAt) && r.at.Before(killedAt.Add(resumed)):
			if r.err == nil {
				othersOK++
			} else {
				othersErr++
			}
		}
		if r.err != nil && errors.Is(r.err, nonce.ErrReplayed) {
			t.Errorf("fresh %s reported replayed: %v", r.e.Key, r.err)
		}
	}
	assert.Positive(t, othersOK, "the other masters' slots keep working during the failover")
	assert.LessOrEqual(t, othersErr, othersOK/4, "and nearly all calls to them succeed")

	// Every entry the victim acknowledged before it died should still be
	// there: the ones the promoted replica never received are lost.
	lost, lastLost := 0, time.Duration(0)
	for _, r := range acceptedOnVictim {
		err := exact.Add(ctx, r.e)
		for errors.Is(err, nonce.ErrUnavailable) {
			time.Sleep(10 * time.Millisecond)
			err = exact.Add(ctx, r.e)
		}
		if err == nil {
			lost++
			lastLost = max(lastLost, killedAt.Sub(r.at))
		}
	}
	c2, err := idem.Claim(ctx, idemKey, fp, time.Minute)
	require.NoError(t, err, "the idempotency script runs on the promoted replica (EVAL after NOSCRIPT)")
	require.False(t, c2.Acquired)
	assert.Equal(t, []byte("kept"), c2.Existing.Response.Body)

	t.Logf("failover: checks on the killed master's slots resumed after %v without a new client (%d calls failed meanwhile); "+
		"other masters' slots meanwhile: %d ok, %d failed; bloom checks: %d ok, %d failed over the whole run",
		resumed.Round(time.Millisecond), victimErrs, othersOK, othersErr, bloomOK, bloomErr)
	t.Logf("asynchronous replication lost %d of %d nonces the killed master had acknowledged", lost, len(acceptedOnVictim))
	if lost > 0 {
		t.Logf("the oldest lost nonce was acknowledged %v before the kill", lastLost.Round(time.Microsecond))
	}
	assert.Less(t, resumed, 15*time.Second)
}

// jointByTagging: on a Cluster, a covered request's nonce and claim are one
// EVALSHA on the principal's master when both stores tag by principal and
// the nonce's scope is the record's principal; tagged by key they are two
// calls, the SET on the nonce's master and the claim on the record's, as
// are Bloom nonces under either tagging.
func jointByTagging(t *testing.T, cl *redistest.Cluster, c redisstore.Client) {
	ctx := context.Background()
	fp := sha256.Sum256([]byte("req"))
	var monitors []*redistest.Monitor
	for _, m := range cl.Masters() {
		monitors = append(monitors, m.Monitor(t))
	}
	storeCalls := func() []string {
		var out []string
		for _, m := range monitors {
			for _, name := range m.Calls() {
				switch name {
				case "set", "bitfield", "pexpireat", "evalsha", "eval":
					out = append(out, name)
				}
			}
		}
		sort.Strings(out)
		return out
	}
	for _, tc := range []struct {
		tag  layout.Tagging
		mode string
		want []string
	}{
		{layout.TagPrincipal, "exact", []string{"evalsha"}},
		{layout.TagKey, "exact", []string{"evalsha", "set"}},
		{layout.TagPrincipal, "bloom", []string{"bitfield", "evalsha"}},
	} {
		s := jointStores(c, redisstore.WithTagging(tc.tag))[tc.mode](t)
		claim := func() {
			e := entry(uuid.NewString()) // scope "p"
			got, nerr, cerr := s.ClaimWithNonce(ctx, e, "p", "p\x00"+uuid.NewString(), fp, time.Minute)
			require.NoError(t, nerr)
			require.NoError(t, cerr)
			require.True(t, got.Acquired)
		}
		claim() // loads the scripts
		storeCalls()
		claim()
		got := storeCalls()
		if tc.mode == "bloom" {
			// An expiry update may ride with the BITFIELD.
			got = slicesWithout(got, "pexpireat")
		}
		assert.Equal(t, tc.want, got, "%s/%s", tc.tag, tc.mode)
	}
}

func slicesWithout(s []string, drop string) []string {
	var out []string
	for _, x := range s {
		if x != drop {
			out = append(out, x)
		}
	}
	return out
}
