package redisstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/nonce"
	redisstore "github.com/replayguard/replayguard/redis"
	"github.com/replayguard/replayguard/redis/redistest"
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

	cfg := replayguard.RedisConfig{Addrs: []string{srv.Addr()}, TLS: true, Username: "gateway", Password: "gateway-pw", DB: 3,
		Timeout: replayguard.Duration(5 * time.Second), KeyPrefix: "acme"}
	c, err := redisstore.NewClient(cfg)
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
	bad, err := redisstore.NewClient(cfg)
	require.NoError(t, err)
	defer bad.Close()
	err = redisstore.NewNonce(bad).Ping(ctx)
	require.ErrorIs(t, err, nonce.ErrUnavailable)

	cfg.Password, cfg.TLS = "gateway-pw", false
	plain, err := redisstore.NewClient(cfg)
	require.NoError(t, err)
	defer plain.Close()
	require.Error(t, redisstore.NewNonce(plain).Ping(ctx), "the server speaks TLS only")
}

func TestNewClientValidates(t *testing.T) {
	t.Parallel()
	_, err := redisstore.NewClient(replayguard.RedisConfig{})
	var fe *replayguard.FieldError
	require.True(t, errors.As(err, &fe))
	assert.Equal(t, "redis.addrs", fe.Field)
	_, err = redisstore.NewClient(replayguard.RedisConfig{Addrs: []string{"127.0.0.1:6379", "nohostport"}})
	require.True(t, errors.As(err, &fe))
	assert.Equal(t, "redis.addrs[1]", fe.Field)
}
