package layout

// The code here stays in the subset of Go the Yaegi interpreter runs (no
// min, max, clear, iterators or generics) and imports only the standard
// library.

import (
	"crypto/sha256"
	"encoding/hex"
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

// TaggingMarker returns the key recording the Tagging of the instances
// sharing the prefix: <prefix>:tagging, holding "key" or "principal".
func (k Keys) TaggingMarker() string {
	return k.prefix() + ":tagging"
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
