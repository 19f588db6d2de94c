package redisstore_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/bloom"
	"github.com/replayguard/replayguard/bloom/bloomcore"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/nonce/noncetest"
	"github.com/replayguard/replayguard/redisstore"
	"github.com/replayguard/replayguard/redisstore/layout"
	"github.com/replayguard/replayguard/redisstore/redistest"
)

// nonceStores builds every Redis nonce store configuration on c.
func nonceStores(c redisstore.Client) map[string]func(t *testing.T) nonce.Store {
	exact := func(t *testing.T) nonce.Store {
		return redisstore.NewNonce(c, redisstore.WithKeyPrefix(uniquePrefix(t)), redisstore.WithTimeout(slow))
	}
	bloomStore := func(t *testing.T) nonce.Store {
		b, err := redisstore.NewBloomNonce(c, 100_000, 1e-9, 10*time.Minute, redisstore.WithKeyPrefix(uniquePrefix(t)), redisstore.WithTimeout(slow))
		require.NoError(t, err)
		return b
	}
	shield := func(next func(*testing.T) nonce.Store) func(t *testing.T) nonce.Store {
		return func(t *testing.T) nonce.Store {
			seen, err := bloom.NewMemory(100_000, bloomcore.DefaultShieldFalsePositiveRate, 10*time.Minute)
			require.NoError(t, err)
			return bloomcore.NewShield(next(t), seen)
		}
	}
	stores := map[string]func(t *testing.T) nonce.Store{
		"exact":        exact,
		"bloom":        bloomStore,
		"exact+shield": shield(exact),
		"bloom+shield": shield(bloomStore),
		"exact+principal-tag": func(t *testing.T) nonce.Store {
			return redisstore.NewNonce(c, redisstore.WithKeyPrefix(uniquePrefix(t)), redisstore.WithTagging(layout.TagPrincipal))
		},
	}
	for name, newStore := range stores {
		stores[name] = func(t *testing.T) nonce.Store { return loggingStore{t: t, Store: newStore(t)} }
	}
	return stores
}

// loggingStore logs every error other than a replay, so that a failure in
// the conformance suite shows its cause.
type loggingStore struct {
	t *testing.T
	nonce.Store
}

func (l loggingStore) Add(ctx context.Context, e nonce.Entry) error {
	err := l.Store.Add(ctx, e)
	if err != nil && !errors.Is(err, nonce.ErrReplayed) && ctx.Err() == nil {
		l.t.Logf("Add(%s/%s): %v", e.Scope, e.Key, err)
	}
	return err
}

func TestNonceConformance(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	for client, c := range clients(t, slow, srv.Addr()) {
		for name, newStore := range nonceStores(c) {
			t.Run(client+"/"+name, func(t *testing.T) {
				t.Parallel()
				noncetest.Run(t, newStore)
			})
		}
	}
}

// A client's resend of the same SET … NX GET with the same token after the
// first attempt wrote it (its reply lost) gets the request's own token
// back, which is fresh, not a replay. Another call (another token) is a
// replay.
func TestExactRecognisesItsOwnRetry(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	for client, c := range clients(t, slow, srv.Addr()) {
		t.Run(client, func(t *testing.T) {
			exactOwnRetry(t, srv, redisstore.NewNonce(c), "rg:n:{own-retry-"+client+"}")
		})
	}
}

func exactOwnRetry(t *testing.T, srv *redistest.Server, n *redisstore.Nonce, key string) {
	ctx := context.Background()
	exp := time.Now().Add(time.Minute)

	own, err := n.SetForTest(ctx, key, "4242", exp)
	require.NoError(t, err)
	assert.False(t, own, "first write")
	own, err = n.SetForTest(ctx, key, "4242", exp)
	require.NoError(t, err, "the retry of the same call is fresh")
	assert.True(t, own)
	_, err = n.SetForTest(ctx, key, "4343", exp)
	require.ErrorIs(t, err, nonce.ErrReplayed, "another call is a replay")

	pttl, err := srv.Do("PTTL", key)
	require.NoError(t, err)
	ms, _ := strconv.Atoi(pttl)
	assert.InDelta(t, time.Minute.Milliseconds(), ms, 5000, "absolute expiry from Entry.Expires")
}

func TestExactKeyLayout(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	n := redisstore.NewNonce(newClient(t, slow, srv.Addr()), redisstore.WithKeyPrefix("acme"))
	e := nonce.Entry{Scope: "client-{a}", Key: "n-}{-" + uuid.NewString(), Timestamp: time.Now(), Expires: time.Now().Add(time.Minute)}
	require.NoError(t, n.Add(context.Background(), e))
	keys, err := srv.Do("KEYS", "*")
	require.NoError(t, err)
	assert.Equal(t, "acme:n:{"+layout.Digest(e.Scope+"\x00"+e.Key)+"}", keys)
	v, err := srv.Do("OBJECT", "ENCODING", keys)
	require.NoError(t, err)
	assert.Equal(t, "int", v, "the token is stored as an integer")
}
