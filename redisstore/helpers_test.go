package redisstore_test

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
// because the suite runs many servers and a cluster in parallel under the
// race detector, on machines that may have two cores.
const slow = 5 * time.Second

var prefixSeq atomic.Int64

// uniquePrefix isolates stores sharing one Redis.
func uniquePrefix(t testing.TB) string {
	return fmt.Sprintf("t%d", prefixSeq.Add(1))
}

func clientConfig(timeout time.Duration, addrs ...string) redisstore.Config {
	return redisstore.Config{Addrs: addrs, Timeout: confval.Duration(timeout)}
}

func newClient(t testing.TB, timeout time.Duration, addrs ...string) *goredis.Client {
	t.Helper()
	c, err := goredis.New(clientConfig(timeout, addrs...))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c.Unwrap().Ping(ctx).Err())
	return c
}

// newResp returns a client of package resp on addrs, as the Traefik plugin
// builds it: the first address asked for the slot map, the others besides.
func newResp(t testing.TB, timeout time.Duration, addrs ...string) *resp.Client {
	t.Helper()
	c, err := resp.New(resp.Options{Addr: addrs[0], ClusterAddrs: addrs[1:], Timeout: timeout})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// clients returns both clients the stores run on, go-redis and resp, each
// on addrs.
func clients(t testing.TB, timeout time.Duration, addrs ...string) map[string]redisstore.Client {
	t.Helper()
	return map[string]redisstore.Client{
		"go-redis": newClient(t, timeout, addrs...),
		"resp":     newResp(t, timeout, addrs...),
	}
}
