package layout_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/replayguard/replayguard/redisstore/layout"
)

func TestTimeArithmeticPast2262(t *testing.T) {
	far := time.Date(2300, 1, 1, 0, 0, 0, 1, time.UTC)
	tests := []struct {
		name string
		got  int64
		want int64
	}{
		{"ms rounds up", layout.UnixMilliCeil(time.Unix(1, 1)), 1001},
		{"ms exact", layout.UnixMilliCeil(time.Unix(1, 0)), 1000},
		{"ms before 1970 rounds up", layout.UnixMilliCeil(time.Unix(-1, 1)), -999},
		{"ms past 2262", layout.UnixMilliCeil(far), far.Unix()*1000 + 1},
		{"millis round up", layout.Millis(time.Millisecond + 1), 2},
		{"millis at least 1", layout.Millis(0), 1},
		{"millis of the largest duration", layout.Millis(math.MaxInt64), math.MaxInt64/int64(time.Millisecond) + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.got)
		})
	}
}
