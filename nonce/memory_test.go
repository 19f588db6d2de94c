package nonce_test

import (
	"context"
	"fmt"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/nonce/noncetest"
)

func TestMemoryConformance(t *testing.T) {
	noncetest.Run(t, func(*testing.T) nonce.Store { return nonce.NewMemory() })
	noncetest.RunQuota(t, 50, func(*testing.T) nonce.Store {
		return nonce.NewMemory(nonce.WithKeyShare(50), nonce.WithMaxEntries(200))
	})
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestMemoryReclaimsExpiredRecords(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	m := nonce.NewMemory(nonce.WithClock(clk.now), nonce.WithShards(4))
	ctx := context.Background()
	// Ten rounds of 10,000 keys each living one minute: memory must follow
	// the live set, not the total.
	for round := 0; round < 10; round++ {
		for i := 0; i < 10_000; i++ {
			now := clk.now()
			require.NoError(t, m.Add(ctx, nonce.Entry{Scope: "k", Key: fmt.Sprintf("r%d-%d", round, i), Timestamp: now, Expires: now.Add(time.Minute)}))
		}
		assert.LessOrEqual(t, m.Len(), 20_000, "round %d", round)
		clk.advance(61 * time.Second)
	}
	m.Sweep()
	assert.Zero(t, m.Len(), "every record expired and reclaimed")
}

func TestMemoryReAddAfterExpiryKeepsNewRecord(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	m := nonce.NewMemory(nonce.WithClock(clk.now), nonce.WithShards(1))
	ctx := context.Background()
	e := nonce.Entry{Scope: "k", Key: "n", Expires: clk.now().Add(time.Second)}
	require.NoError(t, m.Add(ctx, e))
	clk.advance(2 * time.Second)
	e.Expires = clk.now().Add(time.Minute)
	require.NoError(t, m.Add(ctx, e))
	clk.advance(2 * time.Second)
	// The stale heap item of the first record must not delete the second.
	m.Sweep()
	require.ErrorIs(t, m.Add(ctx, e), nonce.ErrReplayed)
	assert.Equal(t, 1, m.Len())
}

func TestMemoryMaxEntriesFailsClosed(t *testing.T) {
	m := nonce.NewMemory(nonce.WithMaxEntries(2))
	ctx := context.Background()
	exp := time.Now().Add(time.Minute)
	require.NoError(t, m.Add(ctx, nonce.Entry{Key: "a", Expires: exp}))
	require.NoError(t, m.Add(ctx, nonce.Entry{Key: "b", Expires: exp}))
	err := m.Add(ctx, nonce.Entry{Key: "c", Expires: exp})
	require.ErrorIs(t, err, nonce.ErrUnavailable)
	require.ErrorIs(t, m.Add(ctx, nonce.Entry{Key: "a", Expires: exp}), nonce.ErrReplayed, "a full store still rejects replays")
}

func TestMemoryKeyShareRetryAfterIsTheEarliestExpiry(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	m := nonce.NewMemory(nonce.WithClock(clk.now), nonce.WithKeyShare(3), nonce.WithMaxEntries(4))
	ctx := context.Background()
	add := func(owner, key string, ttl time.Duration) error {
		return m.Add(ctx, nonce.Entry{Scope: owner, Owner: owner, Key: key, Expires: clk.now().Add(ttl)})
	}
	require.NoError(t, add("a", "1", 90*time.Second))
	require.NoError(t, add("a", "2", 40*time.Second))
	require.NoError(t, add("a", "3", 70*time.Second))
	err := add("a", "4", time.Minute)
	var q *nonce.QuotaError
	require.ErrorAs(t, err, &q)
	require.Equal(t, 40*time.Second, q.RetryAfter)
	require.NoError(t, add("b", "1", time.Minute), "the other owner keeps the rest of the cap")
	require.ErrorIs(t, add("c", "1", time.Minute), nonce.ErrUnavailable, "the cap still holds for all")

	clk.advance(41 * time.Second)
	require.NoError(t, add("a", "4", time.Minute), "the earliest record expired: room for one")
	require.Equal(t, 4, m.Len())
}

func TestMemoryExpiredEntryIsNotStored(t *testing.T) {
	m := nonce.NewMemory()
	e := nonce.Entry{Key: "old", Expires: time.Now().Add(-time.Second)}
	require.NoError(t, m.Add(context.Background(), e))
	assert.Zero(t, m.Len())
}

// liveHeap returns the live heap after a full collection.
func liveHeap() int64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// TestMemoryEntryBytesBoundsTheHeap: as the store fills, with or without
// key shares, a record holds no more heap than MemoryEntryBytes, and
// more than half of it.
func TestMemoryEntryBytesBoundsTheHeap(t *testing.T) {
	for _, shares := range []bool{false, true} {
		for _, n := range []int{20_000, 34_000, 125_000, 212_000} {
			t.Run(fmt.Sprintf("shares=%v/%d", shares, n), func(t *testing.T) {
				opts := []nonce.MemoryOption{nonce.WithMaxEntries(n)}
				if shares {
					opts = append(opts, nonce.WithKeyShare(n))
				}
				ctx := context.Background()
				exp := time.Now().Add(time.Hour)
				before := liveHeap()
				m := nonce.NewMemory(opts...)
				for i := 0; i < n; i++ {
					e := nonce.Entry{Scope: "client-a", Owner: "client-a", Key: strconv.Itoa(i), Expires: exp.Add(time.Duration(i) * time.Microsecond)}
					require.NoError(t, m.Add(ctx, e))
				}
				per := (liveHeap() - before) / int64(n)
				t.Logf("%d bytes of heap a record", per)
				assert.LessOrEqual(t, per, int64(nonce.MemoryEntryBytes))
				assert.Greater(t, per, int64(nonce.MemoryEntryBytes/2))
				runtime.KeepAlive(m)
			})
		}
	}
}

// TestMemoryGivesBackWhatExpired: once its records expire, the store's
// maps and heaps shrink back rather than keep the room of their peak.
func TestMemoryGivesBackWhatExpired(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	before := liveHeap()
	m := nonce.NewMemory(nonce.WithClock(clk.now), nonce.WithKeyShare(1<<30), nonce.WithMaxEntries(1<<30))
	ctx := context.Background()
	for i := 0; i < 100_000; i++ {
		require.NoError(t, m.Add(ctx, nonce.Entry{Scope: "k", Owner: "k", Key: strconv.Itoa(i), Expires: clk.now().Add(time.Minute)}))
	}
	full := liveHeap() - before
	clk.advance(2 * time.Minute)
	m.Sweep()
	require.Zero(t, m.Len())
	left := liveHeap() - before
	t.Logf("%d bytes held by 100,000 records, %d once they expired", full, left)
	assert.Less(t, left, full/20, "the peak's maps and heaps are given back")
	runtime.KeepAlive(m)
}
