package nonce_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/replayguard/replayguard/nonce"
)

func TestUnixNanoSaturates(t *testing.T) {
	tests := []struct {
		name string
		t    time.Time
		want int64
	}{
		{"epoch", time.Unix(0, 0), 0},
		{"now-ish", time.Unix(1_750_000_000, 5), 1_750_000_000_000_000_005},
		{"last representable", time.Unix(0, math.MaxInt64), math.MaxInt64},
		{"one past", time.Unix(0, math.MaxInt64).Add(1), math.MaxInt64},
		{"year 2300", time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), math.MaxInt64},
		{"year 5138", time.Unix(99_999_999_999, 0), math.MaxInt64},
		{"first representable", time.Unix(0, math.MinInt64), math.MinInt64},
		{"zero time", time.Time{}, math.MinInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, nonce.UnixNano(tt.t))
		})
	}
}
