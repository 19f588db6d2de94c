package nonce

import (
	"math"
	"time"
)

// maxPlainSeconds bounds the unix seconds whose nanoseconds an int64
// holds with room to spare (about 290 years).
const maxPlainSeconds = 9_150_000_000

var (
	maxNanoTime = time.Unix(0, math.MaxInt64)
	minNanoTime = time.Unix(0, math.MinInt64)
)

// UnixNano returns t in unix nanoseconds, saturating rather than wrapping:
// an instant past what int64 nanoseconds hold (April 2262) becomes the
// largest value, one before September 1677 the smallest. Stores that keep
// an expiry in nanoseconds read Entry.Expires through it, so that a window
// of centuries yields an expiry far ahead instead of one in the past.
func UnixNano(t time.Time) int64 {
	// Within 290 years of 1970 (most calls), UnixNano holds it.
	if s := t.Unix(); s > -maxPlainSeconds && s < maxPlainSeconds {
		return t.UnixNano()
	}
	return saturatedNano(t)
}

// saturatedNano is UnixNano of an instant far from 1970.
func saturatedNano(t time.Time) int64 {
	if t.After(maxNanoTime) {
		return math.MaxInt64
	}
	if t.Before(minNanoTime) {
		return math.MinInt64
	}
	return t.UnixNano()
}
