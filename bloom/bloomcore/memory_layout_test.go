package bloomcore

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/nonce"
)

var layoutEpoch = time.Unix(1_700_000_040, 0)

func newLayoutStore(t *testing.T, opts ...Option) *Memory {
	t.Helper()
	opts = append([]Option{WithClock(func() time.Time { return layoutEpoch }), WithBucketWidth(10 * time.Second)}, opts...)
	m, err := NewMemory(10_000, 1e-6, 10*time.Minute, opts...)
	require.NoError(t, err)
	return m
}

func layoutEntry(i int) nonce.Entry {
	ts := layoutEpoch.Add(time.Duration(i%30) * time.Second)
	return nonce.Entry{Scope: "kid-" + strconv.Itoa(i%3), Key: "nonce-" + strconv.Itoa(i), Timestamp: ts, Expires: ts.Add(time.Minute)}
}

// Every sub-filter holds exactly the bits a bits-and-blooms filter of the
// same size and probes holds after the same insertions, grown partitions
// included: the layout is the reference library's, bit for bit.
func TestMemoryBitsAreBitsAndBlooms(t *testing.T) {
	ctx := context.Background()
	m := newLayoutStore(t)
	type key struct {
		bucket int64
		part   int
		sub    int
	}
	ref := map[key]*bloom.BloomFilter{}
	const n = 2000 // enough for some partitions to grow
	for i := 0; i < n; i++ {
		e := layoutEntry(i)
		data := []byte(nonce.ScopedKey(e.Scope, e.Key))
		idx := BucketIndex(e.Timestamp, m.width)
		part := Partition(data, m.partitions)
		before := 0
		if b := m.buckets[idx]; b != nil {
			before = len(b.parts[part].subs)
		}
		require.NoError(t, m.Add(ctx, e))
		subs := m.buckets[idx].parts[part].subs
		newest := len(subs) - 1
		k := key{idx, part, newest}
		if ref[k] == nil {
			require.Equal(t, before, newest, "one sub-filter stacked at a time")
			ref[k] = bloom.New(subs[newest].m, subs[newest].k)
		}
		ref[k].Add(data)
	}
	require.Len(t, m.buckets, 3)
	grown := 0
	for k, f := range ref {
		sf := m.buckets[k.bucket].parts[k.part].subs[k.sub]
		require.Equal(t, f.Cap(), sf.m)
		require.Equal(t, f.K(), sf.k)
		require.Equal(t, f.BitSet().Words(), sf.words, "bucket %d partition %d sub-filter %d", k.bucket, k.part, k.sub)
		if k.sub > 0 {
			grown++
		}
	}
	assert.Positive(t, grown, "the comparison covers grown partitions")
}

// The bits of an entry are exactly Locations of its scoped key modulo the
// filter size, in the partition FNV-1a selects and the bucket its signed
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

	want := Partition(data, m.partitions)
	for i := range b.parts {
		if i != want {
			assert.Empty(t, b.parts[i].subs, "partition %d", i)
		}
	}
	subs := b.parts[want].subs
	require.Len(t, subs, 1)
	f := subs[0]

	// Per-bucket capacity ceil(10000·10s/10m) = 167, 11 per partition, at
	// half the target rate.
	wantM, wantK := Optimal(11, 0.5e-6)
	require.Equal(t, wantM, f.m)
	require.Equal(t, wantK, f.k)

	expected := map[uint64]bool{}
	for _, l := range Locations(data, f.k) {
		expected[l%uint64(f.m)] = true
	}
	got := map[uint64]bool{}
	for i := uint64(0); i < uint64(f.m); i++ {
		if f.words[i/64]&(1<<(i%64)) != 0 {
			got[i] = true
		}
	}
	assert.Equal(t, expected, got)
}

func TestSubFilterSizing(t *testing.T) {
	m, err := NewMemory(100*16*10, 1e-3, 10*time.Minute, WithMaxSubFilters(8))
	require.NoError(t, err)
	var sum float64
	for i, g := range m.geom {
		assert.Equal(t, uint(100)<<i, g.capacity)
		p := 1e-3 / float64(uint(2)<<i)
		wantM, wantK := Optimal(g.capacity, p)
		assert.Equal(t, wantM, g.m)
		assert.Equal(t, wantK, g.k)
		if i > 0 {
			assert.GreaterOrEqual(t, g.k, m.geom[i-1].k, "one hashing for every sub-filter needs k not to shrink")
		}
		sum += p
	}
	assert.Less(t, sum, 1e-3, "the rates of all sub-filters sum below the target")
}

func TestPartitionsSpread(t *testing.T) {
	counts := make([]int, DefaultPartitions)
	const n = 16_000
	for i := 0; i < n; i++ {
		counts[Partition([]byte(nonce.ScopedKey("kid", strconv.Itoa(i))), DefaultPartitions)]++
	}
	for p, c := range counts {
		assert.InDelta(t, n/DefaultPartitions, c, 150, "partition %d", p)
	}
}

// Growth reports each stacked sub-filter once, after the Add that caused
// it, and nothing before the first partition fills.
func TestMemoryReportsGrowth(t *testing.T) {
	ctx := context.Background()
	var got []Growth
	m := newLayoutStore(t, WithPartitions(1), WithGrowth(func(g Growth) { got = append(got, g) }))
	// One 10 s bucket of one partition: ceil(10000·10s/10m) = 167 entries.
	ts := layoutEpoch
	add := func(i int) {
		require.NoError(t, m.Add(ctx, nonce.Entry{Scope: "k", Key: "n-" + strconv.Itoa(i), Timestamp: ts, Expires: ts.Add(time.Minute)}))
	}
	for i := 0; i < 167; i++ {
		add(i)
	}
	assert.Empty(t, got)
	add(167)
	require.Len(t, got, 1)
	assert.Equal(t, Growth{Bucket: layoutEpoch.UTC(), Partition: 0, SubFilters: 2}, got[0])
	for i := 168; i < 167*3+1; i++ {
		add(i)
	}
	require.Len(t, got, 2)
	assert.Equal(t, 3, got[1].SubFilters)
}
