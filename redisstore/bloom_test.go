package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/bloom/bloomcore"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/redisstore"
	"github.com/replayguard/replayguard/redisstore/layout"
	"github.com/replayguard/replayguard/redisstore/redistest"
)

// The bits of an entry are bits-and-blooms Locations of its scoped key
// modulo m, in the bucket of its signed timestamp and the partition FNV-1a
// selects; the bitmap fills its size class; the key expires by itself.
func TestBloomLayout(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b, err := redisstore.NewBloomNonce(newClient(t, slow, srv.Addr()), 100_000, 1e-9, 10*time.Minute, redisstore.WithKeyPrefix("acme"))
	require.NoError(t, err)
	ts := time.Unix(1_700_000_000, 0)
	e := nonce.Entry{Scope: "client-a", Key: "0123456789abcdef", Timestamp: ts, Expires: time.Now().Add(time.Minute)}
	require.NoError(t, b.Add(context.Background(), e))

	data := []byte(nonce.ScopedKey(e.Scope, e.Key))
	capacity, m, k := b.SubFilter(0)
	// ceil(100000·1m/10m) per bucket over 16 partitions is 625, plus the
	// margin for the uneven split; then the bitmap fills its size class and
	// holds what its bits hold at half the target rate.
	share := uint(625)
	optM, optK := bloomcore.Optimal(bloomcore.WithMargin(share), 0.5e-9)
	assert.Equal(t, optK, k)
	assert.Equal(t, layout.BitmapBits(optM), m)
	assert.Equal(t, bloomcore.Holds(m, k, 0.5e-9), capacity)
	assert.Greater(t, capacity, bloomcore.WithMargin(share))

	key := layout.Keys{Prefix: "acme"}.Bloom(time.Minute, ts.Unix()/60, bloomcore.Partition(data, 16), 0, m, k)
	assert.True(t, strings.HasPrefix(key, "acme:b:{28333333."), key)
	strlen, err := srv.Do("STRLEN", key)
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(int(layout.BitmapBytes(m))), strlen)

	want := map[uint64]bool{}
	for _, l := range bloom.Locations(data, k) {
		want[l%uint64(m)] = true
	}
	for pos := range want {
		bit, err := srv.Do("GETBIT", key, strconv.FormatUint(pos, 10))
		require.NoError(t, err)
		assert.Equal(t, "1", bit, "position %d", pos)
	}
	count, err := srv.Do("BITCOUNT", key, "0", strconv.Itoa(int(m/8)-1))
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(len(want)), count, "no other bit is set")
	counter, err := srv.Do("BITFIELD_RO", key, "GET", "u32", strconv.Itoa(int(m)))
	require.NoError(t, err)
	assert.Equal(t, "1", counter)
	pttl, err := srv.Do("PTTL", key)
	require.NoError(t, err)
	ms, _ := strconv.Atoi(pttl)
	assert.InDelta(t, 60_000, ms, 2000, "the bitmap expires with its latest entry")
}

// A bucket receiving many times its capacity grows sub-filters: fresh
// entries stay fresh, every repeat is caught, and no key lives forever.
func TestBloomGrowth(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newClient(t, slow, srv.Addr())
	var mu sync.Mutex
	grew := map[bloomcore.Growth]int{}
	b, err := redisstore.NewBloomNonce(c, 320, 1e-9, time.Minute, redisstore.WithKeyPrefix("g"), redisstore.WithTimeout(slow),
		redisstore.WithGrowth(func(g bloomcore.Growth) { mu.Lock(); grew[g]++; mu.Unlock() }))
	require.NoError(t, err)
	ctx := context.Background()
	ts := time.Now()
	const n = 3000 // about 9 times the capacity
	entry := func(i int) nonce.Entry {
		return nonce.Entry{Scope: "k", Key: fmt.Sprintf("nonce-%06d", i), Timestamp: ts, Expires: ts.Add(time.Minute)}
	}
	for i := range n {
		require.NoError(t, b.Add(ctx, entry(i)), "entry %d", i)
	}
	for i := range n {
		require.ErrorIs(t, b.Add(ctx, entry(i)), nonce.ErrReplayed, "entry %d", i)
	}

	keys, err := srv.Do("KEYS", "g:b:*")
	require.NoError(t, err)
	subs := map[string]int{}
	for _, k := range strings.Split(keys, "\n") {
		parts := strings.Split(k, ":")
		subs[parts[4]]++
		ttl, err := srv.Do("PTTL", k)
		require.NoError(t, err)
		assert.NotEqual(t, "-1", ttl, "%s has no expiry", k)
	}
	assert.GreaterOrEqual(t, len(subs), 3, "the partitions grew twice: %v", subs)

	// Each partition's growth was reported once per sub-filter it moved to.
	mu.Lock()
	defer mu.Unlock()
	bucket := time.Unix(0, bloomcore.BucketIndex(ts, bloomcore.DefaultBucketWidth)*int64(bloomcore.DefaultBucketWidth)).UTC()
	most := map[int]int{}
	for g, times := range grew {
		assert.Equal(t, 1, times, "%+v", g)
		assert.Equal(t, bucket, g.Bucket)
		if g.SubFilters > most[g.Partition] {
			most[g.Partition] = g.SubFilters
		}
	}
	assert.Len(t, most, bloomcore.DefaultPartitions, "every partition grew")
	for p, sub := range most {
		for i := 2; i <= sub; i++ {
			assert.Contains(t, grew, bloomcore.Growth{Bucket: bucket, Partition: p, SubFilters: i})
		}
	}

	stats, err := b.Stats(ctx)
	require.NoError(t, err)
	require.Len(t, stats, 1)
	s := stats[0]
	assert.Greater(t, s.SubFilters, 16)
	assert.GreaterOrEqual(t, s.Capacity, uint64(n))
	assert.Less(t, s.FalsePositiveRate, 1e-9, "estimated from the fill of every sub-filter")
	t.Logf("after %d entries in a bucket sized for %d: %d sub-filters, fill %.3f, estimated false-positive rate %.2g",
		n, 320, s.SubFilters, s.FillRatio, s.FalsePositiveRate)
}

// Instances share the growth: two instances racing on every entry while a
// bucket grows through several sub-filters agree on exactly one winner per
// entry, and an instance that joins late (knowing only sub-filter 0) still
// sees every entry.
func TestBloomGrowthAcrossInstances(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	newStore := func() *redisstore.BloomNonce {
		b, err := redisstore.NewBloomNonce(newClient(t, slow, srv.Addr()), 160, 1e-9, time.Minute,
			redisstore.WithKeyPrefix("x"), redisstore.WithTimeout(slow))
		require.NoError(t, err)
		return b
	}
	a, b := newStore(), newStore()
	ctx := context.Background()
	ts := time.Now()
	const n = 2000
	entry := func(i int) nonce.Entry {
		return nonce.Entry{Scope: "k", Key: fmt.Sprintf("race-%06d", i), Timestamp: ts, Expires: ts.Add(time.Minute)}
	}
	var wg sync.WaitGroup
	var bad atomic.Int64
	next := atomic.Int64{}
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				var ea, eb error
				var pair sync.WaitGroup
				pair.Add(2)
				go func() { defer pair.Done(); ea = a.Add(ctx, entry(i)) }()
				go func() { defer pair.Done(); eb = b.Add(ctx, entry(i)) }()
				pair.Wait()
				if (ea == nil) == (eb == nil) || !errors.Is(ea, nonce.ErrReplayed) && !errors.Is(eb, nonce.ErrReplayed) {
					bad.Add(1)
					t.Errorf("entry %d: %v / %v", i, ea, eb)
				}
			}
		}()
	}
	wg.Wait()
	require.Zero(t, bad.Load())

	late := newStore()
	for i := range n {
		require.ErrorIs(t, late.Add(ctx, entry(i)), nonce.ErrReplayed, "entry %d", i)
	}
}

// The measured false-positive rate: fresh entries rejected while a bucket
// fills to its capacity and then grows to four times it. p = 1e-2 so that
// false positives are frequent enough to count.
func TestBloomMeasuredFalsePositiveRate(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	const (
		p        = 1e-2
		capacity = 8_000
	)
	b, err := redisstore.NewBloomNonce(newClient(t, slow, srv.Addr()), capacity, p, 10*time.Minute,
		redisstore.WithBucketWidth(10*time.Minute), redisstore.WithKeyPrefix("fp"), redisstore.WithTimeout(slow))
	require.NoError(t, err)
	ctx := context.Background()
	ts := time.Now()
	phases := []struct {
		name     string
		from, to int
	}{{"0-1x capacity", 0, capacity}, {"1-2x capacity", capacity, 2 * capacity}, {"2-4x capacity", 2 * capacity, 4 * capacity}}
	for _, ph := range phases {
		var rejected, failed atomic.Int64
		var wg sync.WaitGroup
		next := atomic.Int64{}
		next.Store(int64(ph.from))
		for w := 0; w < 32; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= ph.to {
						return
					}
					e := nonce.Entry{Scope: "k", Key: "fresh-" + strconv.Itoa(i), Timestamp: ts, Expires: ts.Add(time.Minute)}
					switch err := b.Add(ctx, e); {
					case errors.Is(err, nonce.ErrReplayed):
						rejected.Add(1)
					case err != nil:
						failed.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		require.Zero(t, failed.Load())
		rate := float64(rejected.Load()) / float64(ph.to-ph.from)
		t.Logf("false-positive rate %s at target %g: %d of %d fresh entries rejected = %.2g", ph.name, p, rejected.Load(), ph.to-ph.from, rate)
		assert.Less(t, rate, p, ph.name)
	}
	stats, err := b.Stats(ctx)
	require.NoError(t, err)
	for _, s := range stats {
		t.Logf("after 4x capacity: %d sub-filters, fill %.3f, estimated rate for the next fresh entry %.2g", s.SubFilters, s.FillRatio, s.FalsePositiveRate)
		assert.Less(t, s.FalsePositiveRate, p)
	}
}

// A BITFIELD whose reply does not arrive in time is reported unavailable,
// never as a replay, and is not resent: once Redis runs it, the entry is
// recorded (the client re-signs with a new nonce).
func TestBloomTimeoutIsUnavailableNotReplay(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b, err := redisstore.NewBloomNonce(newClient(t, 100*time.Millisecond, srv.Addr()), 1000, 1e-9, time.Minute,
		redisstore.WithTimeout(100*time.Millisecond))
	require.NoError(t, err)
	ctx := context.Background()
	e := nonce.Entry{Scope: "k", Key: "paused-0123456789", Timestamp: time.Now(), Expires: time.Now().Add(time.Minute)}
	// Warm the connection so that the pause hits the command, not the dial.
	require.NoError(t, b.Ping(ctx))
	_, err = srv.Do("CLIENT", "PAUSE", "400", "WRITE")
	require.NoError(t, err)
	err = b.Add(ctx, e)
	require.ErrorIs(t, err, nonce.ErrUnavailable)
	require.NotErrorIs(t, err, nonce.ErrReplayed)
	time.Sleep(500 * time.Millisecond)
	bitfields := redistest.CommandCalls(mustDo(t, srv, "INFO", "commandstats"))["bitfield"]
	assert.LessOrEqual(t, bitfields, int64(1), "sent at most once")
}

func mustDo(t *testing.T, srv *redistest.Server, args ...string) string {
	t.Helper()
	r, err := srv.Do(args...)
	require.NoError(t, err)
	return r
}

// A Redis that restarts empty loses the expiries this instance had set; the
// bitmaps created afterwards must still expire by themselves.
func TestBloomKeysExpireAfterAnEmptyRestart(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b, err := redisstore.NewBloomNonce(newClient(t, slow, srv.Addr()), 1000, 1e-9, time.Minute, redisstore.WithTimeout(slow))
	require.NoError(t, err)
	ctx := context.Background()
	ts := time.Now()
	entry := func(i int) nonce.Entry {
		return nonce.Entry{Scope: "k", Key: fmt.Sprintf("restart-%d", i), Timestamp: ts, Expires: ts.Add(time.Minute)}
	}
	for i := 0; i < 50; i++ {
		require.NoError(t, b.Add(ctx, entry(i)))
	}
	srv.Restart()
	for i := 50; i < 100; i++ {
		err := b.Add(ctx, entry(i))
		for errors.Is(err, nonce.ErrUnavailable) {
			time.Sleep(10 * time.Millisecond)
			err = b.Add(ctx, entry(i))
		}
		require.NoError(t, err)
	}
	keys, err := srv.Do("KEYS", "*")
	require.NoError(t, err)
	require.NotEmpty(t, keys)
	for _, k := range strings.Split(keys, "\n") {
		ttl, err := srv.Do("PTTL", k)
		require.NoError(t, err)
		assert.NotEqual(t, "-1", ttl, "%s has no expiry", k)
	}
}
