package layout

// The code here stays in the subset of Go the Yaegi interpreter runs (no
// min, max, clear, iterators or generics) and imports only the standard
// library.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// DefaultPrefix is the key prefix when redis.key_prefix is empty.
const DefaultPrefix = "rg"

// Tagging chooses the hash tag of nonce and idempotency keys, and with it
// which keys share a cluster slot.
type Tagging int

const (
	// TagKey tags each record by its own digest: records spread evenly over
	// every slot, whoever sent them. The default.
	TagKey Tagging = iota
	// TagPrincipal tags records by the digest of their principal (the
	// nonce's scope, the idempotency key's principal): all records of one
	// principal share one slot, so a script could touch a principal's nonce
	// and idempotency record together, but one busy principal loads one
	// shard.
	TagPrincipal
)

// String returns "key" or "principal".
func (t Tagging) String() string {
	if t == TagPrincipal {
		return "principal"
	}
	return "key"
}

// Keys builds key names. The zero value uses DefaultPrefix and TagKey.
type Keys struct {
	// Prefix starts every key; DefaultPrefix when empty.
	Prefix string
	// Tagging selects the hash tag of nonce and idempotency keys.
	Tagging Tagging
}

func (k Keys) prefix() string {
	if k.Prefix == "" {
		return DefaultPrefix
	}
	return k.Prefix
}

// DigestLen is the length of a Digest: 32 hex characters.
const DigestLen = 32

// Digest returns the first 16 bytes of SHA-256(s) in lower-case hex. Every
// user-controlled part of a key goes through it, so no client can choose
// the bytes of a key, and `{` or `}` in a nonce can never move a hash tag.
func Digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:DigestLen/2])
}

// ScopedKey joins scope and key as nonce.ScopedKey does: scope, one zero
// byte, key.
func ScopedKey(scope, key string) string {
	return scope + "\x00" + key
}

// Nonce returns the exact-mode key of a replay key under scope:
//
//	TagKey:       <prefix>:n:{<Digest(scope 0x00 key)>}
//	TagPrincipal: <prefix>:{<Digest(scope)>}:n:<Digest(scope 0x00 key)>
func (k Keys) Nonce(scope, key string) string {
	d := Digest(ScopedKey(scope, key))
	if k.Tagging == TagPrincipal {
		return k.prefix() + ":{" + Digest(scope) + "}:n:" + d
	}
	return k.prefix() + ":n:{" + d + "}"
}

// Idempotency returns the key of the idempotency record of scopedKey, the
// principal and the Idempotency-Key joined by a zero byte
// (idempotency.ScopedKey):
//
//	TagKey:       <prefix>:i:{<Digest(scopedKey)>}
//	TagPrincipal: <prefix>:{<Digest(principal)>}:i:<Digest(scopedKey)>
//
// The principal is what precedes the first zero byte.
func (k Keys) Idempotency(scopedKey string) string {
	d := Digest(scopedKey)
	if k.Tagging == TagPrincipal {
		principal, _, _ := strings.Cut(scopedKey, "\x00")
		return k.prefix() + ":{" + Digest(principal) + "}:i:" + d
	}
	return k.prefix() + ":i:{" + d + "}"
}

// Bloom returns the key of sub-filter sub of partition part of bucket
// bucket, for buckets width wide and a bitmap of m filter bits probed k
// times:
//
//	<prefix>:b:{<bucket>.<part>}:<width ms>:<sub>:<m>:<k>
//
// All sub-filters of one partition share the hash tag and so one slot.
// Width, m and k are part of the name so that instances configured
// differently never read each other's bits as their own.
func (k Keys) Bloom(width time.Duration, bucket int64, part, sub int, m, probes uint) string {
	var b strings.Builder
	b.Grow(len(k.prefix()) + 64)
	b.WriteString(k.prefix())
	b.WriteString(":b:{")
	b.WriteString(strconv.FormatInt(bucket, 10))
	b.WriteByte('.')
	b.WriteString(strconv.Itoa(part))
	b.WriteString("}:")
	b.WriteString(strconv.FormatInt(width.Milliseconds(), 10))
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(sub))
	b.WriteByte(':')
	b.WriteString(strconv.FormatUint(uint64(m), 10))
	b.WriteByte(':')
	b.WriteString(strconv.FormatUint(uint64(probes), 10))
	return b.String()
}

// ErrInvalidParameter reports a sizing argument out of range.
var ErrInvalidParameter = errors.New("layout: invalid parameter")

// BucketIndex returns floor(ts / width), in unix nanoseconds.
func BucketIndex(ts time.Time, width time.Duration) int64 {
	n, w := unixNano(ts), int64(width)
	q := n / w
	if n%w < 0 {
		q--
	}
	return q
}

// unixNano returns t in unix nanoseconds, saturating past April 2262 (and
// before September 1677) instead of wrapping.
func unixNano(t time.Time) int64 {
	switch {
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	case t.Before(time.Unix(0, math.MinInt64)):
		return math.MinInt64
	}
	return t.UnixNano()
}

// BucketEnd returns the first instant after bucket.
func BucketEnd(bucket int64, width time.Duration) time.Time {
	return time.Unix(0, bucket*int64(width)).Add(width)
}

// Partition returns FNV-1a 64(data) mod n, the partition of an element
// (as package bloom computes it).
func Partition(data []byte, n int) int {
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
	)
	h := uint64(offset64)
	for _, c := range data {
		h ^= uint64(c)
		h *= prime64
	}
	return int(h % uint64(n))
}

// PartitionCapacity returns the number of entries each partition's first
// sub-filter is sized for: capacity entries per window spread over buckets
// width wide, ceil(capacity·width/window) per bucket, split evenly over
// partitions (as package bloom sizes them).
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

// WithMargin returns the number of entries a sub-filter meant for c entries
// is sized for: c plus four standard deviations of a partition's share,
// c + ceil(4·sqrt(c)). Entries split over partitions by hash, so a bucket
// receiving exactly its capacity gives some partitions a little more than
// their share; the margin keeps them from growing for that.
func WithMargin(c uint) uint {
	return c + uint(math.Ceil(4*math.Sqrt(float64(c))))
}

// Holds returns how many entries a Bloom filter of m bits probed k times
// holds before its false-positive rate, (1 - e^(-k·n/m))^k, passes p:
// floor(-m/k · ln(1 - p^(1/k))). A sub-filter counts as full past it.
func Holds(m, k uint, p float64) uint {
	if m == 0 || k == 0 || !(p > 0 && p < 1) {
		return 0
	}
	n := -float64(m) / float64(k) * math.Log1p(-math.Pow(p, 1/float64(k)))
	return uint(math.Floor(n))
}

// SubRate returns the false-positive rate sub-filter i is sized for, for a
// target p: p/2^(i+1), so that the rates of all sub-filters sum below p.
func SubRate(p float64, i int) float64 { return math.Ldexp(p, -(i + 1)) }

// CounterBits is the width of the insertion counter kept after the filter
// bits of every sub-filter bitmap (a BITFIELD u32 at bit offset m).
const CounterBits = 32

// BitmapBits returns the number of filter bits m' ≥ m of a sub-filter whose
// optimal size is m bits: the bitmap string (m'/8 bytes of filter, then the
// 4-byte counter) is grown until it fills the jemalloc size class Redis
// allocates for it, so the bits the allocator rounds up to are used rather
// than wasted. m' is a multiple of 8.
func BitmapBits(m uint) uint {
	l0 := (m+7)/8 + CounterBits/8
	class := SizeClass(sdsHeader(l0) + l0 + 1)
	l := class - 1 - sdsHeader(l0)
	for sdsHeader(l)+l+1 > class {
		l--
	}
	return (l - CounterBits/8) * 8
}

// BitmapBytes returns the length of a sub-filter bitmap of m filter bits:
// m/8 bytes of filter and 4 of counter.
func BitmapBytes(m uint) uint { return (m+7)/8 + CounterBits/8 }

// sdsHeader returns the header size Redis 7 gives a string of length l.
func sdsHeader(l uint) uint {
	switch {
	case l < 1<<5:
		return 1
	case l < 1<<8:
		return 3
	case l < 1<<16:
		return 5
	case uint64(l) < 1<<32:
		return 9
	}
	return 17
}

// SizeClass returns the jemalloc size class an allocation of n bytes is
// rounded up to (8, 16, 32, 48, …, 128, then four classes per doubling).
func SizeClass(n uint) uint {
	switch {
	case n <= 8:
		return 8
	case n <= 128:
		return (n + 15) &^ 15
	}
	lg := uint(bits.Len(n-1)) - 1 // n-1 in [2^lg, 2^(lg+1))
	step := uint(1) << (lg - 2)
	return (n + step - 1) &^ (step - 1)
}
