package bloom_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/bloom/bloomcore"
	"github.com/replayguard/replayguard/redisstore"
)

// sizings returns the (m, k) of every sub-filter the stores build for
// capacities 10 to 10⁹ by decade at rates 10⁻¹ to 10⁻¹² by decade, over
// the default window (ten minutes), bucket width and partitions: the
// memory store's (Optimal of its partition's share), up to the most
// sub-filters it may stack, and the Redis store's (Optimal with a margin,
// grown to the allocator's size class), up to the largest bitmap Redis
// holds. It ends with filters of about 2³² bits, the largest a Redis
// bitmap holds.
func sizings(t testing.TB) [][2]uint {
	t.Helper()
	var out [][2]uint
	const window = 10 * time.Minute
	for c := uint(10); c <= 1_000_000_000; c *= 10 {
		pc, err := bloomcore.PartitionCapacity(c, bloomcore.DefaultBucketWidth, window, bloomcore.DefaultPartitions)
		require.NoError(t, err)
		for p := 1e-1; p >= 1e-12; p /= 10 {
			for i := 0; i < bloomcore.MaxSubFilters; i++ {
				m, k := bloomcore.Optimal(bloomcore.SubCapacity(pc, i), bloomcore.SubRate(p, i))
				out = append(out, [2]uint{m, k})
			}
			b, err := redisstore.NewBloomNonce(nil, c, p, window)
			require.NoError(t, err)
			for i := 0; ; i++ {
				_, m, k := b.SubFilter(i)
				if m > 1<<32-32 {
					break
				}
				out = append(out, [2]uint{m, k})
			}
		}
	}
	for _, m := range []uint{1<<32 - 64, 1<<32 - 32, 1<<32 - 1, 1 << 32, 1<<32 + 1} {
		for _, k := range []uint{1, 7, 31, 44} {
			out = append(out, [2]uint{m, k})
		}
	}
	return out
}

// randomElement returns an element as the stores see them, scope, zero
// byte, nonce, or random bytes of every length across MurmurHash3's
// 16-byte blocks and tails.
func randomElement(rng *rand.Rand) []byte {
	if rng.IntN(2) == 0 {
		data := make([]byte, rng.IntN(80))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		return data
	}
	const chars = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-._~"
	nonce := make([]byte, 16+rng.IntN(113))
	for i := range nonce {
		nonce[i] = chars[rng.IntN(len(chars))]
	}
	return append([]byte("client-"+string(chars[rng.IntN(10)])+"\x00"), nonce...)
}

// bloomcore.Locations is bits-and-blooms' Locations, before and after the
// modulo, over a million random elements spread over every (m, k) the
// stores' sizing produces.
func TestLocationsMatchBitsAndBlooms(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := sizings(t)
	require.Greater(t, len(sizes), 1000)
	n := 1_000_000
	if testing.Short() {
		n = 50_000
	}
	for i := 0; i < n; i++ {
		data := randomElement(rng)
		s := sizes[i%len(sizes)]
		m, k := uint64(s[0]), s[1]
		got, want := bloomcore.Locations(data, k), bloom.Locations(data, k)
		if len(got) != len(want) {
			t.Fatalf("element %x, k %d: %d positions, want %d", data, k, len(got), len(want))
		}
		for j := range got {
			if got[j] != want[j] || got[j]%m != want[j]%m {
				t.Fatalf("element %x, m %d, k %d: position %d is %d, want %d", data, m, k, j, got[j], want[j])
			}
		}
	}
}

// A filter built by bits-and-blooms has its bits exactly where
// bloomcore.Locations puts them, taken modulo its size.
func TestLocationsSetTheFiltersBits(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, s := range sizings(t)[:200] {
		if s[0] > 1<<24 {
			continue
		}
		f := bloom.New(s[0], s[1])
		data := randomElement(rng)
		f.Add(data)
		want := map[uint]bool{}
		for _, l := range bloomcore.Locations(data, s[1]) {
			want[uint(l%uint64(s[0]))] = true
		}
		got := map[uint]bool{}
		for i, ok := f.BitSet().NextSet(0); ok; i, ok = f.BitSet().NextSet(i + 1) {
			got[i] = true
		}
		assert.Equal(t, want, got, "m %d k %d", s[0], s[1])
	}
}

// bloomcore.Optimal is bits-and-blooms' EstimateParameters.
func TestOptimalMatchesEstimateParameters(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for n := 0; n < 20_000; n++ {
		c := uint(rng.IntN(10_000_000) + 1)
		p := rng.Float64()
		if p == 0 {
			continue
		}
		wm, wk := bloom.EstimateParameters(c, p)
		m, k := bloomcore.Optimal(c, p)
		require.Equal(t, [2]uint{wm, wk}, [2]uint{m, k}, "capacity %d rate %g", c, p)
	}
}
