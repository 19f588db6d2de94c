package bloom_test

import (
	"math/rand/v2"
	"testing"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/bloom/bloomcore"
)

// sizings returns the (m, k) of the sub-filters the stores build: every
// sub-filter of partitions of many capacities at the rates configurations
// use, sized as bloom.Memory sizes them (Optimal) and as the Redis store
// does (Optimal of WithMargin).
func sizings() [][2]uint {
	var out [][2]uint
	for _, c := range []uint{1, 2, 11, 100, 6_250, 62_500, 1_000_000} {
		for _, p := range []float64{0.5, 1e-2, 1e-3, 1e-6, 1e-9, 1e-12} {
			for i := 0; i < 6; i++ {
				m, k := bloomcore.Optimal(bloomcore.SubCapacity(c, i), bloomcore.SubRate(p, i))
				out = append(out, [2]uint{m, k})
				m, k = bloomcore.Optimal(bloomcore.WithMargin(bloomcore.SubCapacity(c, i)), bloomcore.SubRate(p, i))
				out = append(out, [2]uint{m, k})
			}
		}
	}
	return out
}

// bloomcore.Locations is bits-and-blooms' Locations, for elements of every
// length (across the 16-byte blocks and the tails of MurmurHash3) and for
// every (m, k) the sizing produces, before and after the modulo.
func TestLocationsMatchBitsAndBlooms(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := sizings()
	for n := 0; n < 20_000; n++ {
		data := make([]byte, rng.IntN(80))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		s := sizes[rng.IntN(len(sizes))]
		m, k := s[0], s[1]
		got, want := bloomcore.Locations(data, k), bloom.Locations(data, k)
		require.Equal(t, want, got, "element %x, k %d", data, k)
		for i := range got {
			require.Equal(t, want[i]%uint64(m), got[i]%uint64(m))
		}
	}
}

// A filter built by bits-and-blooms has its bits exactly where
// bloomcore.Locations puts them.
func TestLocationsSetTheFiltersBits(t *testing.T) {
	for _, s := range sizings()[:40] {
		f := bloom.New(s[0], s[1])
		data := []byte("scope\x00nonce")
		f.Add(data)
		for _, l := range bloomcore.Locations(data, s[1]) {
			assert.True(t, f.BitSet().Test(uint(l%uint64(s[0]))))
		}
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
