package bloom

import (
	"math"

	"github.com/bits-and-blooms/bloom/v3"
)

// Optimal returns the number of bits m and of hash functions k of a Bloom
// filter holding capacity entries at false-positive rate fpRate:
//
//	m = ceil(-capacity · ln(fpRate) / ln(2)²)
//	k = ceil(ln(2) · m / capacity)
//
// the values of bloom.EstimateParameters in bits-and-blooms/bloom/v3. That is
// about 43.1 bits (5.4 bytes) per entry and k = 30 at 1e-9, 14.4 bits
// (1.8 bytes) and k = 10 at 1e-3. A capacity of 0 is treated as 1; an fpRate
// outside (0, 1) yields (0, 0).
func Optimal(capacity uint, fpRate float64) (m uint, k uint) {
	if !(fpRate > 0 && fpRate < 1) {
		return 0, 0
	}
	return bloom.EstimateParameters(max(capacity, 1), fpRate)
}

// BitsPerEntry returns the bits per entry of an optimally sized filter at
// fpRate, -ln(fpRate) / ln(2)², or 0 for an fpRate outside (0, 1).
//
// Memory sizes its first sub-filters for fpRate/2 so that later, tighter
// sub-filters keep the sum below fpRate: BitsPerEntry(fpRate/2) is its cost,
// about 44.6 bits (5.6 bytes) per entry at 1e-9.
func BitsPerEntry(fpRate float64) float64 {
	if !(fpRate > 0 && fpRate < 1) {
		return 0
	}
	return -math.Log(fpRate) / (math.Ln2 * math.Ln2)
}
