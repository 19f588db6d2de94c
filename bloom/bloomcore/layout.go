package bloomcore

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/bits"
	"time"

	"github.com/replayguard/replayguard/nonce"
)

// Layout defaults.
const (
	// DefaultBucketWidth is the span of signed timestamps sharing one bucket.
	DefaultBucketWidth = time.Minute
	// DefaultPartitions is the number of partitions a bucket is split into.
	DefaultPartitions = 16
)

// ErrInvalidParameter reports a sizing argument or option out of range.
var ErrInvalidParameter = errors.New("bloom: invalid parameter")

// BucketIndex returns floor(ts / width), ts in unix nanoseconds saturating
// past April 2262 (nonce.UnixNano).
func BucketIndex(ts time.Time, width time.Duration) int64 {
	n, w := nonce.UnixNano(ts), int64(width)
	q := n / w
	if n%w < 0 {
		q--
	}
	return q
}

// BucketEnd returns the first instant after bucket.
func BucketEnd(bucket int64, width time.Duration) time.Time {
	return time.Unix(0, bucket*int64(width)).Add(width)
}

// Partition returns FNV-1a 64(data) mod n, the partition of an element.
func Partition(data []byte, n int) int {
	// hash/fnv, not a loop over data: under the Yaegi interpreter (the
	// Traefik plugin) each byte would cost a fraction of a microsecond.
	h := fnv.New64a()
	_, _ = h.Write(data)
	return int(h.Sum64() % uint64(n))
}

// PartitionCapacity returns the number of entries each partition's first
// sub-filter is sized for: capacity entries per window spread over buckets
// width wide, ceil(capacity·width/window) per bucket, split evenly over
// partitions, at least 1.
func PartitionCapacity(capacity uint, width, window time.Duration, partitions int) (uint, error) {
	switch {
	case capacity == 0:
		return 0, fmt.Errorf("%w: capacity must be positive", ErrInvalidParameter)
	case window <= 0:
		return 0, fmt.Errorf("%w: window %v must be positive", ErrInvalidParameter, window)
	case width <= 0:
		return 0, fmt.Errorf("%w: bucket width %v must be positive", ErrInvalidParameter, width)
	case partitions < 1:
		return 0, fmt.Errorf("%w: partitions %d must be at least 1", ErrInvalidParameter, partitions)
	}
	hi, lo := bits.Mul64(uint64(capacity), uint64(width))
	if hi >= uint64(window) {
		return 0, fmt.Errorf("%w: capacity %d per %v is too large for buckets of %v", ErrInvalidParameter, capacity, window, width)
	}
	perBucket, rem := bits.Div64(hi, lo, uint64(window))
	if rem != 0 {
		perBucket++
	}
	parts := uint64(partitions)
	c := (perBucket + parts - 1) / parts
	if c < 1 {
		c = 1
	}
	return uint(c), nil
}

// SubCapacity returns the capacity of sub-filter i of a partition whose
// first sub-filter holds c entries: c·2^i.
func SubCapacity(c uint, i int) uint { return c << i }

// SubRate returns the false-positive rate sub-filter i is sized for, for a
// target p: p/2^(i+1), so that the rates of all sub-filters sum below p.
func SubRate(p float64, i int) float64 { return math.Ldexp(p, -(i + 1)) }

// WithMargin returns the number of entries a sub-filter meant for c entries
// is sized for when partitions cannot grow freely: c plus four standard
// deviations of a partition's share, c + ceil(4·sqrt(c)). Entries split
// over partitions by hash, so a bucket receiving exactly its capacity gives
// some partitions a little more than their share; the margin keeps them
// from growing for that.
func WithMargin(c uint) uint {
	return c + uint(math.Ceil(4*math.Sqrt(float64(c))))
}

// Holds returns how many entries a Bloom filter of m bits probed k times
// holds before its false-positive rate, (1 - e^(-k·n/m))^k, passes p:
// floor(-m/k · ln(1 - p^(1/k))).
func Holds(m, k uint, p float64) uint {
	if m == 0 || k == 0 || !(p > 0 && p < 1) {
		return 0
	}
	n := -float64(m) / float64(k) * math.Log1p(-math.Pow(p, 1/float64(k)))
	return uint(math.Floor(n))
}

// Optimal returns the number of bits m and of hash functions k of a Bloom
// filter holding capacity entries at false-positive rate fpRate:
//
//	m = ceil(-capacity · ln(fpRate) / ln(2)²)
//	k = ceil(ln(2) · m / capacity)
//
// the values of EstimateParameters in bits-and-blooms/bloom/v3. That is
// about 43.1 bits (5.4 bytes) per entry and k = 30 at 1e-9, 14.4 bits
// (1.8 bytes) and k = 10 at 1e-3. A capacity of 0 is treated as 1; an
// fpRate outside (0, 1) yields (0, 0).
func Optimal(capacity uint, fpRate float64) (m uint, k uint) {
	if !(fpRate > 0 && fpRate < 1) {
		return 0, 0
	}
	if capacity == 0 {
		capacity = 1
	}
	n := float64(capacity)
	m = uint(math.Ceil(-1 * n * math.Log(fpRate) / math.Pow(math.Log(2), 2)))
	k = uint(math.Ceil(math.Log(2) * float64(m) / n))
	return m, k
}

// BitsPerEntry returns the bits per entry of an optimally sized filter at
// fpRate, -ln(fpRate) / ln(2)², or 0 for an fpRate outside (0, 1).
//
// A store sizing its first sub-filters for fpRate/2, so that later, tighter
// sub-filters keep the sum below fpRate, pays BitsPerEntry(fpRate/2): about
// 44.6 bits (5.6 bytes) per entry at 1e-9.
func BitsPerEntry(fpRate float64) float64 {
	if !(fpRate > 0 && fpRate < 1) {
		return 0
	}
	return -math.Log(fpRate) / (math.Ln2 * math.Ln2)
}

// BucketStats describes one bucket, for metrics.
type BucketStats struct {
	// Start is the first signed timestamp of the bucket; it spans
	// [Start, Start+width).
	Start time.Time
	// Expires is the latest expiry recorded in the bucket, after which the
	// bucket is dropped.
	Expires time.Time
	// Entries is the number of entries recorded.
	Entries uint64
	// Capacity is the number of entries the allocated sub-filters are sized
	// for; it grows as partitions grow.
	Capacity uint64
	// BitsSet and Bits count the set and total bits of all sub-filters.
	BitsSet, Bits uint64
	// FillRatio is BitsSet/Bits, 0 for an empty bucket.
	FillRatio float64
	// SubFilters is the number of sub-filters across all partitions. It
	// exceeds the number of partitions once some partition has grown.
	SubFilters int
	// FalsePositiveRate is the estimated probability that a fresh entry of
	// this bucket is reported replayed: for each partition the sum over its
	// sub-filters of fill^k, averaged over partitions (an entry picks one
	// uniformly).
	FalsePositiveRate float64
}
