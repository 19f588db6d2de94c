package idempotency

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAfterSaturates(t *testing.T) {
	tests := []struct {
		name string
		now  int64
		d    time.Duration
		want int64
	}{
		{"plain", 100, 5, 105},
		{"zero", 100, 0, 100},
		{"negative", 100, -5, 95},
		{"past the largest", 1_750_000_000_000_000_000, 250 * 365 * 24 * time.Hour, math.MaxInt64},
		{"largest duration", 1, math.MaxInt64, math.MaxInt64},
		{"exactly the largest", 0, math.MaxInt64, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, after(tt.now, tt.d))
		})
	}
}

// A TTL or lease of centuries keeps the record rather than wrap into the
// past and drop it at once.
func TestMemoryLongTTLKeepsTheRecord(t *testing.T) {
	const centuries = 250 * 365 * 24 * time.Hour
	ctx := context.Background()
	m := NewMemory()
	c, err := m.Claim(ctx, "k", Fingerprint{1}, centuries)
	require.NoError(t, err)
	require.True(t, c.Acquired)
	again, err := m.Claim(ctx, "k", Fingerprint{1}, centuries)
	require.NoError(t, err)
	assert.False(t, again.Acquired, "the in-progress record must still be held")
}
