package goredis_test

import (
	"context"
	"errors"
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
