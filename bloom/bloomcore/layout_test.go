package bloomcore_test

import (
	"hash/fnv"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/bloom/bloomcore"
)

func TestPartitionIsFNV1a(t *testing.T) {
	for _, s := range []string{"", "a", "client-a\x00nonce-1"} {
		h := fnv.New64a()
		_, _ = h.Write([]byte(s))
		assert.Equal(t, int(h.Sum64()%16), bloomcore.Partition([]byte(s), 16), s)
	}
}

func TestBucketIndexFloorsNegative(t *testing.T) {
	assert.Equal(t, int64(28333333), bloomcore.BucketIndex(time.Unix(1_700_000_000, 0), time.Minute))
	assert.Equal(t, int64(-1), bloomcore.BucketIndex(time.Unix(-1, 0), time.Minute))
	assert.Equal(t, time.Unix(1_700_000_040, 0), bloomcore.BucketEnd(28333333, time.Minute))
}

func TestPartitionCapacity(t *testing.T) {
	c, err := bloomcore.PartitionCapacity(1_000_000, time.Minute, 10*time.Minute, 16)
	require.NoError(t, err)
	assert.Equal(t, uint(6250), c)
	c, err = bloomcore.PartitionCapacity(1, time.Minute, 10*time.Minute, 16)
	require.NoError(t, err)
	assert.Equal(t, uint(1), c)
	for _, bad := range []func() (uint, error){
		func() (uint, error) { return bloomcore.PartitionCapacity(0, time.Minute, time.Hour, 1) },
		func() (uint, error) { return bloomcore.PartitionCapacity(1, 0, time.Hour, 1) },
		func() (uint, error) { return bloomcore.PartitionCapacity(1, time.Minute, 0, 1) },
		func() (uint, error) { return bloomcore.PartitionCapacity(1, time.Minute, time.Hour, 0) },
		func() (uint, error) { return bloomcore.PartitionCapacity(^uint(0), time.Hour, time.Nanosecond, 1) },
	} {
		_, err := bad()
		assert.ErrorIs(t, err, bloomcore.ErrInvalidParameter)
	}
}

func TestSubFilterRatesSumBelowTarget(t *testing.T) {
	var sum float64
	for i := 0; i < 30; i++ {
		sum += bloomcore.SubRate(1e-9, i)
		assert.Equal(t, uint(100)<<i, bloomcore.SubCapacity(100, i))
	}
	assert.Less(t, sum, 1e-9)
}

func TestBucketPast2262(t *testing.T) {
	far := time.Date(2300, 1, 1, 0, 0, 0, 1, time.UTC)
	assert.Equal(t, math.MaxInt64/int64(time.Hour), bloomcore.BucketIndex(far, time.Hour))
	assert.True(t, bloomcore.BucketEnd(math.MaxInt64/int64(time.Hour), time.Hour).After(time.Unix(0, math.MaxInt64)), "the last bucket ends after it starts")
}
