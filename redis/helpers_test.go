package redisstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
	redisstore "github.com/replayguard/replayguard/redis"
)

// slow is the timeout of tests that are not about timeouts: generous,
// because the suite runs many servers and a cluster in parallel under the
// race detector, on machines that may have two cores.
const slow = 5 * time.Second

var prefixSeq atomic.Int64

// uniquePrefix isolates stores sharing one Redis.
func uniquePrefix(t testing.TB) string {
	return fmt.Sprintf("t%d", prefixSeq.Add(1))
}

func clientConfig(timeout time.Duration, addrs ...string) replayguard.RedisConfig {
	return replayguard.RedisConfig{Addrs: addrs, Timeout: replayguard.Duration(timeout)}
}

func newClient(t testing.TB, timeout time.Duration, addrs ...string) redisstore.Client {
	t.Helper()
	c, err := redisstore.NewClient(clientConfig(timeout, addrs...))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c.Ping(ctx).Err())
	return c
}
