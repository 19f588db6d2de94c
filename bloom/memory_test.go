package bloom_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/bloom"
	"github.com/replayguard/replayguard/bloom/bloomcore"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/nonce/noncetest"
)

func TestMemoryConformance(t *testing.T) {
	noncetest.Run(t, func(t *testing.T) nonce.Store {
		m, err := bloom.NewMemory(100_000, 1e-9, 10*time.Minute, bloom.WithBucketWidth(time.Second))
		require.NoError(t, err)
		return m
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

// epoch is the start of a minute, so that a one-minute bucket starting there
// holds every entry stamped within the next 60 s.
var epoch = time.Unix(1_700_000_040, 0)

func entryAt(ts time.Time, key string, ttl time.Duration) nonce.Entry {
	return nonce.Entry{Scope: "kid-1", Key: key, Timestamp: ts, Expires: ts.Add(ttl)}
}

// fill adds n keys "in-<i>" stamped ts and returns how many were accepted.
func fill(t *testing.T, m *bloom.Memory, ts time.Time, n int) int {
	t.Helper()
	ctx := context.Background()
	accepted := 0
	for i := range n {
		err := m.Add(ctx, entryAt(ts, "in-"+strconv.Itoa(i), time.Minute))
		if err == nil {
			accepted++
			continue
		}
		require.ErrorIs(t, err, nonce.ErrReplayed)
	}
	return accepted
}

// falsePositiveRate checks n keys never added, "out-<i>", and returns the
// share reported as present.
func falsePositiveRate(t *testing.T, m *bloom.Memory, ts time.Time, n int) float64 {
	t.Helper()
	ctx := context.Background()
	hits := 0
	for i := range n {
		ok, err := m.Contains(ctx, entryAt(ts, "out-"+strconv.Itoa(i), time.Minute))
		require.NoError(t, err)
		if ok {
			hits++
		}
	}
	return float64(hits) / float64(n)
}

func TestMemoryFalsePositiveRate(t *testing.T) {
	const (
		capacity = 100_000
		target   = 1e-3
		probes   = 1_000_000
	)
	clk := &fakeClock{t: epoch.Add(10 * time.Second)}
	m, err := bloom.NewMemory(capacity, target, time.Minute, bloom.WithClock(clk.now))
	require.NoError(t, err)

	ts := clk.now()
	accepted := fill(t, m, ts, capacity)
	observed := falsePositiveRate(t, m, ts, probes)

	stats := m.Stats()
	require.Len(t, stats, 1, "one bucket")
	s := stats[0]
	t.Logf("capacity %d at target %g: observed false-positive rate %.3g (%.2f× target) over %d fresh keys; "+
		"estimated %.3g, fill %.3f, %d sub-filters, %d of %d inserts accepted",
		capacity, target, observed, observed/target, probes, s.FalsePositiveRate, s.FillRatio, s.SubFilters, accepted, capacity)

	assert.LessOrEqual(t, observed, 1.5*target)
	assert.Greater(t, observed, 0.2*target, "the rate must be measurable")
	assert.InDelta(t, observed, s.FalsePositiveRate, 0.5*target, "the estimate tracks the observation")
	assert.Equal(t, uint64(accepted), s.Entries)
	assert.Equal(t, epoch.UTC(), s.Start)
	assert.Less(t, capacity-accepted, int(target*capacity), "at most the target rate of inserts are false positives")
}

func TestMemoryGrowsInsteadOfSaturating(t *testing.T) {
	const (
		capacity = 100_000
		target   = 1e-3
		probes   = 500_000
	)
	clk := &fakeClock{t: epoch.Add(10 * time.Second)}
	m, err := bloom.NewMemory(capacity, target, time.Minute, bloom.WithClock(clk.now))
	require.NoError(t, err)

	ts := clk.now()
	accepted := fill(t, m, ts, 4*capacity)
	observed := falsePositiveRate(t, m, ts, probes)

	stats := m.Stats()
	require.Len(t, stats, 1)
	s := stats[0]
	t.Logf("4× capacity %d at target %g: observed false-positive rate %.3g (%.2f× target) over %d fresh keys; "+
		"estimated %.3g, fill %.3f, %d sub-filters for %d entries (capacity now %d)",
		capacity, target, observed, observed/target, probes, s.FalsePositiveRate, s.FillRatio, s.SubFilters, s.Entries, s.Capacity)

	assert.Greater(t, s.SubFilters, bloom.DefaultPartitions, "partitions grew")
	assert.GreaterOrEqual(t, s.Capacity, s.Entries)
	assert.LessOrEqual(t, observed, 1.5*target, "no saturation")
	assert.LessOrEqual(t, s.FalsePositiveRate, target)
	assert.Greater(t, accepted, 4*capacity-int(target*4*capacity))
}

func TestMemoryDropsExpiredBuckets(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: epoch}
	m, err := bloom.NewMemory(1000, 1e-6, 10*time.Second,
		bloom.WithClock(clk.now), bloom.WithBucketWidth(time.Second), bloom.WithPartitions(4))
	require.NoError(t, err)

	old := entryAt(clk.now(), "old", 2*time.Second)
	require.NoError(t, m.Add(ctx, old))
	require.ErrorIs(t, m.Add(ctx, old), nonce.ErrReplayed)
	require.Len(t, m.Stats(), 1)
	assert.Equal(t, epoch.UTC(), m.Stats()[0].Start)
	assert.Equal(t, old.Expires.UTC(), m.Stats()[0].Expires)

	clk.advance(time.Second)
	require.NoError(t, m.Add(ctx, entryAt(clk.now(), "newer", 5*time.Second)))
	require.Len(t, m.Stats(), 2, "the old bucket lives until its entries expire")
	require.ErrorIs(t, m.Add(ctx, old), nonce.ErrReplayed)

	clk.advance(time.Second) // old.Expires reached
	m.Sweep()
	stats := m.Stats()
	require.Len(t, stats, 1, "the old bucket is dropped")
	assert.Equal(t, epoch.Add(time.Second).UTC(), stats[0].Start)

	// Many rounds: memory follows the window, not the total ever seen.
	for round := range 200 {
		clk.advance(time.Second)
		now := clk.now()
		for i := range 50 {
			require.NoError(t, m.Add(ctx, entryAt(now, "r"+strconv.Itoa(round)+"-"+strconv.Itoa(i), 3*time.Second)))
		}
		assert.LessOrEqual(t, len(m.Stats()), 4, "round %d", round)
	}
	var entries uint64
	for _, s := range m.Stats() {
		entries += s.Entries
	}
	assert.LessOrEqual(t, entries, uint64(4*50))
}

func TestMemoryBucketsBySignedTimestamp(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: epoch.Add(30 * time.Second)}
	m, err := bloom.NewMemory(1000, 1e-9, time.Minute, bloom.WithClock(clk.now))
	require.NoError(t, err)

	e := entryAt(epoch.Add(-5*time.Second), "n", time.Minute)
	require.NoError(t, m.Add(ctx, e))
	require.Len(t, m.Stats(), 1)
	assert.Equal(t, epoch.Add(-time.Minute).UTC(), m.Stats()[0].Start, "bucket of the signed timestamp, not of the clock")

	moved := e
	moved.Timestamp = epoch.Add(5 * time.Second)
	require.NoError(t, m.Add(ctx, moved), "another bucket is another filter")

	noTS := nonce.Entry{Scope: "kid-1", Key: "no-ts", Expires: clk.now().Add(time.Minute)}
	require.NoError(t, m.Add(ctx, noTS))
	require.ErrorIs(t, m.Add(ctx, noTS), nonce.ErrReplayed)
	assert.Len(t, m.Stats(), 2, "a zero timestamp falls in the clock's bucket")
}

func TestMemoryExpiredEntryIsNotStored(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: epoch}
	m, err := bloom.NewMemory(1000, 1e-9, time.Minute, bloom.WithClock(clk.now))
	require.NoError(t, err)

	e := entryAt(epoch.Add(-2*time.Minute), "late", time.Minute)
	require.NoError(t, m.Add(ctx, e))
	require.NoError(t, m.Add(ctx, e))
	assert.Empty(t, m.Stats())
}

func TestMemoryCanceledContext(t *testing.T) {
	m, err := bloom.NewMemory(1000, 1e-9, time.Minute)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	err = m.Add(ctx, entryAt(time.Now(), "x", time.Minute))
	require.ErrorIs(t, err, nonce.ErrUnavailable)
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, nonce.ErrReplayed)

	_, err = m.Contains(ctx, entryAt(time.Now(), "x", time.Minute))
	require.ErrorIs(t, err, nonce.ErrUnavailable)
	require.NoError(t, m.Ping(context.Background()))
}

func TestMemoryConcurrentAdds(t *testing.T) {
	ctx := context.Background()
	m, err := bloom.NewMemory(100_000, 1e-9, time.Minute)
	require.NoError(t, err)

	e := entryAt(time.Now(), "contended", time.Minute)
	const (
		same, distinct, per = 64, 16, 500
	)
	var ok, replayed, freshFailed atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range same {
		wg.Go(func() {
			<-start
			switch err := m.Add(ctx, e); {
			case err == nil:
				ok.Add(1)
			case assert.ErrorIs(t, err, nonce.ErrReplayed):
				replayed.Add(1)
			}
		})
	}
	for w := range distinct {
		wg.Go(func() {
			<-start
			for i := range per {
				if err := m.Add(ctx, entryAt(time.Now(), "w"+strconv.Itoa(w)+"-"+strconv.Itoa(i), time.Minute)); err != nil {
					freshFailed.Add(1)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	assert.Equal(t, int64(1), ok.Load(), "exactly one Add of the contended entry wins")
	assert.Equal(t, int64(same-1), replayed.Load())
	assert.Zero(t, freshFailed.Load(), "distinct keys are all accepted")
}

func TestMemoryRefusesGrowthPastMaxSubFilters(t *testing.T) {
	const capacity = 1000
	clk := &fakeClock{t: epoch.Add(10 * time.Second)}
	m, err := bloom.NewMemory(capacity, 1e-6, time.Minute, bloom.WithClock(clk.now),
		bloom.WithPartitions(1), bloom.WithMaxSubFilters(2))
	require.NoError(t, err)
	ctx := context.Background()
	ts := clk.now()

	// Two sub-filters hold 1+2 = 3 times the capacity.
	accepted := 0
	var refusal error
	for i := 0; i < 4*capacity && refusal == nil; i++ {
		err := m.Add(ctx, entryAt(ts, "in-"+strconv.Itoa(i), time.Minute))
		switch {
		case err == nil:
			accepted++
		case errors.Is(err, nonce.ErrReplayed):
		default:
			refusal = err
		}
	}
	require.ErrorIs(t, refusal, nonce.ErrUnavailable, "past the limit the store fails closed")
	require.NotErrorIs(t, refusal, nonce.ErrReplayed)
	assert.InDelta(t, 3*capacity, accepted, 5)
	s := m.Stats()[0]
	assert.Equal(t, 2, s.SubFilters, "no third sub-filter")
	require.ErrorIs(t, m.Add(ctx, entryAt(ts, "in-0", time.Minute)), nonce.ErrReplayed, "a full store still rejects replays")
}

func TestMemoryKeyShare(t *testing.T) {
	const capacity = 1000
	clk := &fakeClock{t: epoch.Add(10 * time.Second)}
	m, err := bloom.NewMemory(capacity, 1e-6, time.Minute, bloom.WithClock(clk.now),
		bloom.WithPartitions(4), bloom.WithMaxSubFilters(2), bloom.WithKeyShare(0.5))
	require.NoError(t, err)
	ctx := context.Background()
	add := func(owner string, i int) error {
		ts := clk.now()
		return m.Add(ctx, nonce.Entry{Scope: owner, Owner: owner, Key: "n-" + strconv.Itoa(i), Timestamp: ts, Expires: ts.Add(time.Minute)})
	}
	var refusal error
	accepted := 0
	for i := 0; i < 3*capacity && refusal == nil; i++ {
		if err := add("key-a", i); err == nil {
			accepted++
		} else if !errors.Is(err, nonce.ErrReplayed) {
			refusal = err
		}
	}
	require.ErrorIs(t, refusal, nonce.ErrQuotaExceeded)
	var q *nonce.QuotaError
	require.ErrorAs(t, refusal, &q)
	assert.Equal(t, 50*time.Second, q.RetryAfter, "until the next one-minute bucket begins")
	// Half of 4 partitions × 250 × (1+2), filled until one partition refused.
	assert.Greater(t, accepted, capacity)
	assert.LessOrEqual(t, accepted, 3*capacity/2)

	for i := 0; i < 100; i++ {
		require.NoError(t, add("key-b", i), "another owner is unaffected")
	}
	clk.advance(50 * time.Second)
	require.NoError(t, add("key-a", 1_000_000), "a fresh bucket has room")
}

func TestNewMemoryValidates(t *testing.T) {
	tests := []struct {
		name     string
		capacity uint
		fpRate   float64
		window   time.Duration
		opts     []bloom.Option
	}{
		{"zero capacity", 0, 1e-9, time.Minute, nil},
		{"zero rate", 1000, 0, time.Minute, nil},
		{"rate one", 1000, 1, time.Minute, nil},
		{"negative rate", 1000, -0.1, time.Minute, nil},
		{"zero window", 1000, 1e-9, 0, nil},
		{"zero width", 1000, 1e-9, time.Minute, []bloom.Option{bloom.WithBucketWidth(0)}},
		{"zero partitions", 1000, 1e-9, time.Minute, []bloom.Option{bloom.WithPartitions(0)}},
		{"nil clock", 1000, 1e-9, time.Minute, []bloom.Option{bloom.WithClock(nil)}},
		{"zero sub-filters", 1000, 1e-9, time.Minute, []bloom.Option{bloom.WithMaxSubFilters(0)}},
		{"too many sub-filters", 1000, 1e-9, time.Minute, []bloom.Option{bloom.WithMaxSubFilters(25)}},
		{"zero key share", 1000, 1e-9, time.Minute, []bloom.Option{bloom.WithKeyShare(0)}},
		{"key share over one", 1000, 1e-9, time.Minute, []bloom.Option{bloom.WithKeyShare(1.5)}},
		{"overflow", ^uint(0), 1e-9, time.Nanosecond, []bloom.Option{bloom.WithBucketWidth(time.Hour)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := bloom.NewMemory(tt.capacity, tt.fpRate, tt.window, tt.opts...)
			require.ErrorIs(t, err, bloom.ErrInvalidParameter)
			require.Nil(t, m)
		})
	}
}

func TestOptimal(t *testing.T) {
	tests := []struct {
		capacity uint
		fpRate   float64
		bytes    float64 // per entry
		k        uint
	}{
		{1_000_000, 1e-9, 5.39, 30},
		{1_000_000, 1e-3, 1.80, 10},
		{1_000_000, 0.01, 1.20, 7},
	}
	for _, tt := range tests {
		m, k := bloomcore.Optimal(tt.capacity, tt.fpRate)
		assert.InDelta(t, tt.bytes, float64(m)/8/float64(tt.capacity), 0.01, "fp %g", tt.fpRate)
		assert.InDelta(t, bloomcore.BitsPerEntry(tt.fpRate), float64(m)/float64(tt.capacity), 0.01)
		assert.Equal(t, tt.k, k, "fp %g", tt.fpRate)
	}
	m, k := bloomcore.Optimal(0, 1e-3)
	m1, k1 := bloomcore.Optimal(1, 1e-3)
	assert.Equal(t, [2]uint{m1, k1}, [2]uint{m, k}, "capacity 0 counts as 1")
	m, k = bloomcore.Optimal(10, 1.5)
	assert.Zero(t, m+k)
	assert.Zero(t, bloomcore.BitsPerEntry(0))
}

func BenchmarkMemoryAdd(b *testing.B) {
	m, err := bloom.NewMemory(10_000_000, 1e-9, 10*time.Minute)
	require.NoError(b, err)
	ctx := context.Background()
	var seq atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			now := time.Now()
			if err := m.Add(ctx, entryAt(now, strconv.FormatInt(seq.Add(1), 36), time.Minute)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
