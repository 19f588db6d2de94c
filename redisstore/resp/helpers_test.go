package resp_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/confval"
	"github.com/replayguard/replayguard/redisstore"
	"github.com/replayguard/replayguard/redisstore/goredis"
	"github.com/replayguard/replayguard/redisstore/resp"
)

// slow is the timeout of tests that are not about timeouts: generous,
// because the tests run servers and a cluster in parallel under the race
// detector, on machines that may have two cores.
const slow = 5 * time.Second

var prefixSeq atomic.Int64

// uniquePrefix isolates stores sharing one Redis.
func uniquePrefix() string {
	return fmt.Sprintf("r%d", prefixSeq.Add(1))
}

// newClient returns a resp Client on o (Timeout slow unless set), closed in
// t.Cleanup.
func newClient(t testing.TB, o resp.Options) *resp.Client {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = slow
	}
	c, err := resp.New(o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// newGoRedis returns a go-redis client as the gateway builds it: a Cluster
// client when given several addresses.
func newGoRedis(t testing.TB, addrs ...string) *goredis.Client {
	t.Helper()
	c, err := goredis.New(redisstore.Config{Addrs: addrs, Timeout: confval.Duration(slow)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c.Unwrap().Ping(ctx).Err())
	return c
}
