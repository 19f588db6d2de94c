package goredis_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/confval"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/redisstore"
	"github.com/replayguard/replayguard/redisstore/goredis"
	"github.com/replayguard/replayguard/redisstore/redistest"
)

// TLS (trusting the system roots, here SSL_CERT_FILE), an ACL user limited
// to the key prefix, a password and a database all come from the redis:
// configuration.
func TestClientTLSAuthAndDB(t *testing.T) {
	srv := redistest.Start(t, redistest.WithTLS(), redistest.WithPassword("default-pw"),
		redistest.WithArgs("--user", "gateway", "on", ">gateway-pw", "~acme:*", "&*", "+@all"))
	t.Setenv("SSL_CERT_FILE", srv.CAFile())
	ctx := context.Background()
	e := nonce.Entry{Scope: "client-a", Key: "tls-0123456789abcdef", Timestamp: time.Now(), Expires: time.Now().Add(time.Minute)}

	cfg := redisstore.Config{Addrs: []string{srv.Addr()}, TLS: true, Username: "gateway", Password: "gateway-pw", DB: 3,
		Timeout: confval.Duration(5 * time.Second), KeyPrefix: "acme"}
	c, err := goredis.New(cfg)
	require.NoError(t, err)
	defer c.Close()
	n := redisstore.NewNonce(c, redisstore.WithKeyPrefix(cfg.KeyPrefix), redisstore.WithTimeout(cfg.Timeout.D()))
	require.NoError(t, n.Ping(ctx))
	require.NoError(t, n.Add(ctx, e))
	require.ErrorIs(t, n.Add(ctx, e), nonce.ErrReplayed)
	keyspace, err := srv.Do("INFO", "keyspace")
	require.NoError(t, err)
	assert.Contains(t, keyspace, "db3:keys=1", "the configured database")

	other := redisstore.NewNonce(c, redisstore.WithKeyPrefix("other"))
	err = other.Add(ctx, e)
	require.ErrorIs(t, err, nonce.ErrUnavailable, "the ACL user may only touch its prefix")
	assert.Contains(t, err.Error(), "NOPERM")

	cfg.Password = "wrong"
	bad, err := goredis.New(cfg)
	require.NoError(t, err)
	defer bad.Close()
	err = redisstore.NewNonce(bad).Ping(ctx)
	require.ErrorIs(t, err, nonce.ErrUnavailable)

	cfg.Password, cfg.TLS = "gateway-pw", false
	plain, err := goredis.New(cfg)
	require.NoError(t, err)
	defer plain.Close()
	require.Error(t, redisstore.NewNonce(plain).Ping(ctx), "the server speaks TLS only")
}

func TestNewClientValidates(t *testing.T) {
	t.Parallel()
	_, err := goredis.New(redisstore.Config{})
	var fe *confval.FieldError
	require.True(t, errors.As(err, &fe))
	assert.Equal(t, "redis.addrs", fe.Field)
	_, err = goredis.New(redisstore.Config{Addrs: []string{"127.0.0.1:6379", "nohostport"}})
	require.True(t, errors.As(err, &fe))
	assert.Equal(t, "redis.addrs[1]", fe.Field)
}

// connections returns the number of client connections srv has open,
// this query's own left out.
func connections(t *testing.T, srv *redistest.Server) int {
	t.Helper()
	list, err := srv.Do("CLIENT", "LIST")
	require.NoError(t, err)
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		if line != "" && !strings.Contains(line, "cmd=client|list") {
			n++
		}
	}
	return n
}

// On a standalone server New's client writes the commands of many calls
// made at once together on a shared connection, where a wrapped go-redis
// client takes a connection per call in flight; every call still gets its
// own reply.
func TestNewPipelinesConcurrentCalls(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	cfg := redisstore.Config{Addrs: []string{srv.Addr()}, Timeout: confval.Duration(5 * time.Second)}
	piped, err := goredis.New(cfg)
	require.NoError(t, err)
	defer piped.Close()
	plain, err := goredis.New(cfg)
	require.NoError(t, err)
	defer plain.Close()
	ctx := context.Background()
	burst := func(c redisstore.Client, name string) {
		var wg sync.WaitGroup
		for g := 0; g < 64; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 50; i++ {
					key := fmt.Sprintf("%s-%d-%d", name, g, i)
					v, err := c.Process(ctx, redisstore.Cmd{Args: []any{"set", key, key, "get"}})
					assert.NoError(t, err)
					assert.Nil(t, v, key)
					v, err = c.Process(ctx, redisstore.Cmd{Args: []any{"get", key}})
					assert.NoError(t, err)
					assert.Equal(t, key, v, "each call gets its own reply")
				}
			}()
		}
		wg.Wait()
	}
	before := connections(t, srv)
	burst(piped, "piped")
	pipedConns := connections(t, srv) - before
	burst(goredis.Wrap(plain.Unwrap()), "plain")
	plainConns := connections(t, srv) - before - pipedConns
	t.Logf("64 callers at once: %d connections pipelined, %d one call each", pipedConns, plainConns)
	// Calls go straight to a connection while few are in flight.
	assert.LessOrEqual(t, pipedConns, 6)
	assert.Greater(t, plainConns, 10)
}

// A pipelined call waits no longer than its context allows when Redis
// stops answering.
func TestNewPipelinedCallHonoursItsDeadline(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c, err := goredis.New(redisstore.Config{Addrs: []string{srv.Addr()}, Timeout: confval.Duration(time.Second)})
	require.NoError(t, err)
	defer c.Close()
	n := redisstore.NewNonce(c, redisstore.WithTimeout(200*time.Millisecond))
	ctx := context.Background()
	require.NoError(t, n.Ping(ctx))
	srv.Pause()
	defer srv.Resume()
	// Alone, and 16 at once: the later ones through the autopipeliner.
	for _, callers := range []int{1, 16} {
		var wg sync.WaitGroup
		for g := 0; g < callers; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				err := n.Add(ctx, nonce.Entry{Scope: "k", Key: fmt.Sprintf("paused-0123456789-%d-%d", callers, g),
					Timestamp: time.Now(), Expires: time.Now().Add(time.Minute)})
				took := time.Since(start)
				assert.ErrorIs(t, err, nonce.ErrUnavailable)
				assert.Less(t, took, 600*time.Millisecond, "bounded by the store's timeout, not the client's")
			}()
		}
		wg.Wait()
	}
}
