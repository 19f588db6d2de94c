package resp_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/redisstore"
	"github.com/replayguard/replayguard/redisstore/redistest"
	"github.com/replayguard/replayguard/redisstore/resp"
)

func TestDefaultsMatchTheGateway(t *testing.T) {
	assert.Equal(t, redisstore.DefaultTimeout, resp.DefaultTimeout)
}

func TestNewValidates(t *testing.T) {
	for _, o := range []resp.Options{{}, {Addr: "localhost"}, {Addr: "127.0.0.1:6379", DB: -1}, {Addr: "127.0.0.1:6379", ClusterAddrs: []string{"x"}}} {
		_, err := resp.New(o)
		require.Error(t, err, "%+v", o)
		assert.True(t, strings.HasPrefix(err.Error(), "resp: "), err.Error())
	}
}

func TestDoDecodesReplies(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newClient(t, resp.Options{Addr: srv.Addr()})
	ctx := context.Background()
	do := func(args ...any) any {
		t.Helper()
		v, err := c.Do(ctx, args...)
		require.NoError(t, err, "%v", args)
		return v
	}
	assert.Equal(t, "PONG", do("PING"))
	assert.Equal(t, "OK", do("SET", "k", []byte("v\x00\r\n\xff")))
	assert.Equal(t, "v\x00\r\n\xff", do("GET", "k"), "binary-safe")
	assert.Nil(t, do("GET", "absent"))
	assert.Equal(t, int64(1), do("INCR", "n"))
	assert.Equal(t, int64(-4), do("INCRBY", "n", int64(-5)))
	assert.Equal(t, int64(3), do("RPUSH", "l", "a", 2, uint64(3)))
	assert.Equal(t, []any{"a", "2", "3"}, do("LRANGE", "l", 0, -1))
	assert.Equal(t, []any{"v\x00\r\n\xff", nil}, do("MGET", "k", "absent"))
	assert.Equal(t, []any{}, do("LRANGE", "absent", 0, -1))
	assert.Nil(t, do("BLPOP", "absent", "0.01"), "null array")
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB, past the read buffer
	do("SET", "big", big)
	assert.Equal(t, big, do("GET", "big"))
	assert.Equal(t, "1.5", do("INCRBYFLOAT", "f", 1.5))

	_, err := c.Do(ctx, "SET", "k", struct{}{})
	require.Error(t, err, "unsupported argument types are refused before sending")
	_, err = c.Do(ctx)
	require.Error(t, err)
}

// Error replies are Errors carrying the server's message; they leave the
// connection in the pool.
func TestServerErrorsAreTyped(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newClient(t, resp.Options{Addr: srv.Addr(), PoolSize: 1})
	ctx := context.Background()
	id, err := c.Do(ctx, "CLIENT", "ID")
	require.NoError(t, err)

	_, err = c.Do(ctx, "SET", "str", "x")
	require.NoError(t, err)
	_, err = c.Do(ctx, "LPUSH", "str", "y")
	var e *resp.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "WRONGTYPE", e.Prefix())
	assert.Equal(t, "WRONGTYPE Operation against a key holding the wrong kind of value", e.Message)
	assert.Equal(t, "resp: WRONGTYPE Operation against a key holding the wrong kind of value", err.Error())

	_, err = c.Do(ctx, "NOSUCHCOMMAND")
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "ERR", e.Prefix())

	// A Lua error inside an array is an element, not a failure.
	v, err := c.Do(ctx, "EVAL", "return {1, redis.error_reply('LOADING not yet')}", 0)
	require.NoError(t, err)
	assert.Equal(t, []any{int64(1), &resp.Error{Message: "LOADING not yet"}}, v)

	again, err := c.Do(ctx, "CLIENT", "ID")
	require.NoError(t, err)
	assert.Equal(t, id, again, "the same connection served every call")
}

func TestScriptFallsBackToEval(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newClient(t, resp.Options{Addr: srv.Addr()})
	ctx := context.Background()
	s := redisstore.NewScript("return {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1}")
	assert.Len(t, s.Hash(), 40)

	run := func() {
		t.Helper()
		v, err := c.RunScript(ctx, s, []string{"key"}, redisstore.Cmd{Args: []any{[]byte("arg"), 41}})
		require.NoError(t, err)
		assert.Equal(t, []any{"key", "arg", int64(42)}, v)
	}
	calls := func() map[string]int64 {
		info, err := srv.Do("INFO", "commandstats")
		require.NoError(t, err)
		return redistest.CommandCalls(info)
	}
	run() // unknown to a new server: EVALSHA, NOSCRIPT, EVAL
	run() // loaded by the EVAL: EVALSHA
	_, err := c.Do(ctx, "SCRIPT", "FLUSH")
	require.NoError(t, err)
	run() // flushed: EVALSHA, NOSCRIPT, EVAL
	got := calls()
	assert.Equal(t, int64(3), got["evalsha"])
	assert.Equal(t, int64(2), got["eval"])

	_, err = c.RunScript(ctx, redisstore.NewScript("return redis.call('LPUSH', KEYS[1], 'x')"), []string{"str"}, redisstore.Cmd{})
	require.NoError(t, err)
	_, err = c.RunScript(ctx, redisstore.NewScript("return redis.call('GET', KEYS[1])"), []string{"str"}, redisstore.Cmd{})
	var e *resp.Error
	require.ErrorAs(t, err, &e, "a script's error is the error reply")
	assert.Contains(t, e.Message, "WRONGTYPE")
}

// Concurrent callers share at most PoolSize connections and each gets its
// own reply.
func TestPoolUnderConcurrency(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	const poolSize, workers, per = 4, 32, 50
	c := newClient(t, resp.Options{Addr: srv.Addr(), PoolSize: poolSize})
	ctx := context.Background()
	before, err := strconv.Atoi(srv.Info("total_connections_received"))
	require.NoError(t, err)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := "w" + strconv.Itoa(w)
			for i := 1; i <= per; i++ {
				v, err := c.Do(ctx, "INCR", key)
				if !assert.NoError(t, err) {
					return
				}
				assert.Equal(t, int64(i), v, "replies are never crossed")
				_, err = c.Do(ctx, "INCR", "total")
				assert.NoError(t, err)
			}
		}()
	}
	wg.Wait()
	v, err := c.Do(ctx, "GET", "total")
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(workers*per), v)
	received, err := strconv.Atoi(srv.Info("total_connections_received"))
	require.NoError(t, err)
	assert.LessOrEqual(t, received-before, poolSize+1, "connections are reused (one more for INFO)")
}

// A caller waits for a free connection, at most until its context's
// deadline or Options.Timeout.
func TestPoolWait(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	// Redis times blocked commands out with a resolution of 100 ms.
	c := newClient(t, resp.Options{Addr: srv.Addr(), PoolSize: 1, Timeout: time.Second})
	ctx := context.Background()
	// The first call learns whether the server is a Cluster node; done
	// here, it takes no pool slot below.
	_, err := c.Do(ctx, "PING")
	require.NoError(t, err)
	var wg sync.WaitGroup
	var poolTimeouts, ok atomic.Int64
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Do(ctx, "BLPOP", "empty", "0.6") // holds the connection 600 ms
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, resp.ErrPoolTimeout):
				poolTimeouts.Add(1)
			default:
				t.Errorf("unexpected %v", err)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = c.Do(short, "PING")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	wg.Wait()
	assert.Positive(t, poolTimeouts.Load(), "the third caller cannot wait 1200 ms")
	assert.Positive(t, ok.Load())
}

// Kill and restart on the same port: calls fail fast while Redis is down,
// and the same Client works again once it is back.
func TestClientSurvivesRestart(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	const timeout = 100 * time.Millisecond
	c := newClient(t, resp.Options{Addr: srv.Addr(), Timeout: timeout})
	ctx := context.Background()
	_, err := c.Do(ctx, "SET", "k", "v")
	require.NoError(t, err)

	srv.Kill()
	for i := 0; i < 3; i++ {
		start := time.Now()
		_, err = c.Do(ctx, "GET", "k")
		require.Error(t, err)
		assert.Less(t, time.Since(start), timeout+400*time.Millisecond)
	}
	srv.Restart()
	v, err := c.Do(ctx, "SET", "k", "again")
	require.NoError(t, err, "the next call dials the restarted server")
	assert.Equal(t, "OK", v)
}

// A stalled server (SIGSTOP) costs a call its deadline, no more; the
// connection is dropped and the Client recovers when the server resumes.
func TestStalledServerTimesOut(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	const timeout = 100 * time.Millisecond
	c := newClient(t, resp.Options{Addr: srv.Addr(), Timeout: timeout})
	ctx := context.Background()
	_, err := c.Do(ctx, "PING")
	require.NoError(t, err)
	srv.Pause()
	start := time.Now()
	_, err = c.Do(ctx, "PING")
	elapsed := time.Since(start)
	srv.Resume()
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	assert.GreaterOrEqual(t, elapsed, timeout)
	assert.Less(t, elapsed, timeout+400*time.Millisecond)
	require.Eventually(t, func() bool {
		v, err := c.Do(ctx, "PING")
		return err == nil && v == "PONG"
	}, 3*time.Second, 10*time.Millisecond)
}

// Connections the server closed while idle (a restart, its `timeout`
// setting) are checked and dropped once idle for a second, or once another
// one turned out closed: any command then finds a live connection.
func TestServerClosedIdleConnections(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newClient(t, resp.Options{Addr: srv.Addr(), PoolSize: 4})
	ctx := context.Background()
	fill := func() {
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := c.Do(ctx, "BLPOP", "empty", "0.05")
				assert.NoError(t, err)
			}()
		}
		wg.Wait()
	}
	killAll := func() {
		_, err := srv.Do("CLIENT", "KILL", "TYPE", "normal")
		require.NoError(t, err)
	}

	fill()
	killAll()
	time.Sleep(1100 * time.Millisecond)
	for i := 0; i < 4; i++ {
		_, err := c.Do(ctx, "PING")
		require.NoError(t, err, "connections closed by the server are checked and dropped")
	}

	// Without the wait, the first call may find a dead connection; it
	// fails, and the other idle ones are checked before their next use.
	fill()
	killAll()
	_, err := c.Do(ctx, "PING")
	if err != nil {
		t.Logf("first call after the close: %v", err)
	}
	for i := 0; i < 4; i++ {
		_, err := c.Do(ctx, "PING")
		require.NoError(t, err, "one failure condemns the other idle connections")
	}
}

// Connections idle for MaxIdleTime are closed on the next use of the
// pool.
func TestIdleConnectionsExpire(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newClient(t, resp.Options{Addr: srv.Addr(), PoolSize: 4, MaxIdleTime: 300 * time.Millisecond})
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Do(ctx, "BLPOP", "empty", "0.05")
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	idle, err := strconv.Atoi(srv.Info("connected_clients"))
	require.NoError(t, err)
	require.Greater(t, idle, 2, "idle connections, and INFO's own")
	time.Sleep(400 * time.Millisecond)
	_, err = c.Do(ctx, "PING")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return srv.Info("connected_clients") == "2" }, 3*time.Second, 10*time.Millisecond,
		"the expired ones closed, PING's new one kept")
}

// A standalone server is asked for a slot map once: it has no Cluster
// support, and every later call, across a restart too, is one round trip.
func TestStandaloneAskedForSlotsOnce(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newClient(t, resp.Options{Addr: srv.Addr(), Timeout: 100 * time.Millisecond})
	n := redisstore.NewNonce(c, redisstore.WithKeyPrefix(uniquePrefix()), redisstore.WithTimeout(slow))
	ctx := context.Background()
	calls := func() map[string]int64 { return redistest.CommandCalls(mustInfo(t, srv)) }
	_, err := c.Do(ctx, "PING")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return calls()["cluster|slots"] == 1 }, 3*time.Second, 10*time.Millisecond)
	for i := 0; i < 100; i++ {
		require.NoError(t, n.Add(ctx, entry(uuid.NewString())))
	}
	got := calls()
	assert.Equal(t, int64(1), got["cluster|slots"])
	assert.Equal(t, int64(100), got["set"])

	srv.Restart()
	for i := 0; i < 3; i++ {
		_, _ = c.Do(ctx, "PING") // a dead pooled connection may fail one
	}
	for i := 0; i < 20; i++ {
		require.NoError(t, n.Add(ctx, entry(uuid.NewString())))
	}
	time.Sleep(300 * time.Millisecond)
	got = calls()
	assert.Zero(t, got["cluster|slots"], "not asked again after the restart")
	assert.Equal(t, int64(20), got["set"])
}

func TestAuthSelectTLS(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.WithTLS(), redistest.WithPassword("s3cret"))
	pem, err := os.ReadFile(srv.CAFile())
	require.NoError(t, err)
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(pem))
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	ctx := context.Background()

	db3 := newClient(t, resp.Options{Addr: srv.Addr(), TLS: cfg, Username: "default", Password: "s3cret", DB: 3})
	_, err = db3.Do(ctx, "SET", "k", "in db 3")
	require.NoError(t, err)
	v, err := db3.Do(ctx, "GET", "k")
	require.NoError(t, err)
	assert.Equal(t, "in db 3", v)

	db0 := newClient(t, resp.Options{Addr: srv.Addr(), TLS: cfg, Password: "s3cret"})
	v, err = db0.Do(ctx, "GET", "k")
	require.NoError(t, err)
	assert.Nil(t, v, "SELECT was sent")

	wrong := newClient(t, resp.Options{Addr: srv.Addr(), TLS: cfg, Password: "wrong"})
	_, err = wrong.Do(ctx, "PING")
	var e *resp.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "WRONGPASS", e.Prefix())
	assert.Contains(t, err.Error(), "AUTH on "+srv.Addr())

	noAuth := newClient(t, resp.Options{Addr: srv.Addr(), TLS: cfg})
	_, err = noAuth.Do(ctx, "GET", "k")
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "NOAUTH", e.Prefix())

	plain := newClient(t, resp.Options{Addr: srv.Addr(), Password: "s3cret", Timeout: 300 * time.Millisecond})
	_, err = plain.Do(ctx, "PING")
	require.Error(t, err, "plain TCP to a TLS port")

	untrusted := newClient(t, resp.Options{Addr: srv.Addr(), TLS: &tls.Config{MinVersion: tls.VersionTLS12}, Password: "s3cret"})
	_, err = untrusted.Do(ctx, "PING")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "TLS handshake")
}

// A reply over MaxReplyBytes is refused and its connection dropped; the
// Client goes on.
func TestReplyLimit(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newClient(t, resp.Options{Addr: srv.Addr(), MaxReplyBytes: 1024})
	ctx := context.Background()
	_, err := c.Do(ctx, "SET", "big", strings.Repeat("x", 2000))
	require.NoError(t, err)
	_, err = c.Do(ctx, "GET", "big")
	require.ErrorIs(t, err, resp.ErrProtocol)
	for i := 0; i < 100; i++ {
		_, err = c.Do(ctx, "RPUSH", "long", "e")
		require.NoError(t, err)
	}
	_, err = c.Do(ctx, "LRANGE", "long", 0, -1)
	require.ErrorIs(t, err, resp.ErrProtocol, "100 elements count 1600 bytes")
	v, err := c.Do(ctx, "STRLEN", "big")
	require.NoError(t, err)
	assert.Equal(t, int64(2000), v)
}

func TestClose(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c, err := resp.New(resp.Options{Addr: srv.Addr()})
	require.NoError(t, err)
	ctx := context.Background()
	_, err = c.Do(ctx, "PING")
	require.NoError(t, err)
	require.NoError(t, c.Close())
	require.NoError(t, c.Close())
	_, err = c.Do(ctx, "PING")
	require.ErrorIs(t, err, resp.ErrClosed)
	require.Eventually(t, func() bool { return srv.Info("connected_clients") == "1" }, 3*time.Second, 10*time.Millisecond,
		"the idle connection is closed (INFO's own remains)")
}

func TestCanceledContext(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, resp.Options{Addr: srv.Addr()})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Do(ctx, "PING")
	require.ErrorIs(t, err, context.Canceled)
}
