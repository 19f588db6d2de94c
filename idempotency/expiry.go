package idempotency

import (
	"math"
	"time"
)

// after returns now + d in unix nanoseconds, saturating at the largest
// value instead of wrapping: a TTL or lease reaching past April 2262 keeps
// the record for as long as nanoseconds can say, never expires it at once.
func after(now int64, d time.Duration) int64 {
	if d > 0 && now > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	return now + int64(d)
}
