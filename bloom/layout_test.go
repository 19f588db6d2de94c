package bloom

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/bloom/bloomcore"
	"github.com/replayguard/replayguard/nonce"
)

var layoutEpoch = time.Unix(1_700_000_040, 0)

func newLayoutStore(t *testing.T) *Memory {
	t.Helper()
	m, err := NewMemory(10_000, 1e-6, 10*time.Minute,
		WithClock(func() time.Time { return layoutEpoch }), WithBucketWidth(10*time.Second))
	require.NoError(t, err)
	return m
}

func layoutEntry(i int) nonce.Entry {
	ts := layoutEpoch.Add(time.Duration(i%30) * time.Second)
	return nonce.Entry{Scope: "kid-" + strconv.Itoa(i%3), Key: "nonce-" + strconv.Itoa(i), Timestamp: ts, Expires: ts.Add(time.Minute)}
}

// Two independent stores with the same parameters set the same bits for the
// same entries: the layout depends on nothing but the parameters and the
// entries.
func TestLayoutIsDeterministic(t *testing.T) {
	ctx := context.Background()
	a, b := newLayoutStore(t), newLayoutStore(t)
	const n = 2000 // enough for some partitions to grow
	for i := range n {
		require.NoError(t, a.Add(ctx, layoutEntry(i)))
		require.NoError(t, b.Add(ctx, layoutEntry(i)))
	}

	require.Len(t, a.buckets, 3)
	require.Len(t, b.buckets, len(a.buckets))
	grown := 0
	for idx, ba := range a.buckets {
		bb := b.buckets[idx]
		require.NotNil(t, bb, "bucket %d", idx)
		for i := range ba.parts {
			pa, pb := ba.parts[i].subs, bb.parts[i].subs
			require.Len(t, pb, len(pa))
			if len(pa) > 1 {
				grown++
			}
			for j := range pa {
				assert.True(t, pa[j].f.Equal(pb[j].f), "bucket %d partition %d sub-filter %d", idx, i, j)
				assert.Equal(t, pa[j].n, pb[j].n)
			}
		}
	}
	assert.Positive(t, grown, "the comparison covers grown partitions")
}

// The bits of an entry are exactly bloom.Locations of its scoped key modulo
// the filter size, in the partition FNV-1a selects and the bucket its signed
// timestamp selects.
func TestLayoutMatchesLocations(t *testing.T) {
	ctx := context.Background()
	m := newLayoutStore(t)
	e := layoutEntry(7)
	require.NoError(t, m.Add(ctx, e))

	data := []byte(nonce.ScopedKey(e.Scope, e.Key))
	idx := e.Timestamp.Unix() / 10
	require.Contains(t, m.buckets, idx)
	b := m.buckets[idx]

	want := bloomcore.Partition(data, m.partitions)
	for i := range b.parts {
		if i != want {
			assert.Empty(t, b.parts[i].subs, "partition %d", i)
		}
	}
	subs := b.parts[want].subs
	require.Len(t, subs, 1)
	f := subs[0].f

	// Per-bucket capacity ceil(10000·10s/10m) = 167, 11 per partition, at
	// half the target rate.
	wantM, wantK := bloomcore.Optimal(11, 0.5e-6)
	require.Equal(t, wantM, f.Cap())
	require.Equal(t, wantK, f.K())

	expected := make(map[uint]bool)
	for _, l := range bloom.Locations(data, f.K()) {
		expected[uint(l%uint64(f.Cap()))] = true
	}
	got := make(map[uint]bool)
	for i, ok := f.BitSet().NextSet(0); ok; i, ok = f.BitSet().NextSet(i + 1) {
		got[i] = true
	}
	assert.Equal(t, expected, got)
}

func TestSubFilterSizing(t *testing.T) {
	var sum float64
	for i := range 8 {
		sf := newSubFilter(i, 100, 1e-3)
		assert.Equal(t, uint(100)<<i, sf.capacity)
		p := 1e-3 / float64(uint(2)<<i)
		wantM, wantK := bloomcore.Optimal(sf.capacity, p)
		assert.Equal(t, wantM, sf.f.Cap())
		assert.Equal(t, wantK, sf.f.K())
		sum += p
	}
	assert.Less(t, sum, 1e-3, "the rates of all sub-filters sum below the target")
}

func TestPartitionsSpread(t *testing.T) {
	counts := make([]int, DefaultPartitions)
	const n = 16_000
	for i := range n {
		counts[bloomcore.Partition([]byte(nonce.ScopedKey("kid", strconv.Itoa(i))), DefaultPartitions)]++
	}
	for p, c := range counts {
		assert.InDelta(t, n/DefaultPartitions, c, 150, "partition %d", p)
	}
}
