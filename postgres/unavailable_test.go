package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/postgres"
	"github.com/replayguard/replayguard/postgres/pgtest"
)

func TestDatabaseGoneIsUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cluster := pgtest.NewCluster(t)
	s, err := postgres.Open(ctx, cluster.DSN("postgres")+"&connect_timeout=2", postgres.WithJanitorInterval(0))
	require.NoError(t, err)
	defer s.Close()
	pool, err := pgxpool.New(ctx, cluster.DSN("postgres"))
	require.NoError(t, err)
	defer pool.Close()

	heldKey := key()
	held, err := s.Claim(ctx, heldKey, fpA, time.Minute)
	require.NoError(t, err)
	require.True(t, held.Acquired)

	// A claim blocked on a row lock when the database dies gets an error,
	// never a false acquisition.
	locked := key()
	stale, err := s.Claim(ctx, locked, fpA, time.Millisecond)
	require.NoError(t, err)
	require.True(t, stale.Acquired)
	time.Sleep(5 * time.Millisecond)
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, "SELECT 1 FROM replayguard_idempotency WHERE key = $1 FOR UPDATE", []byte(locked))
	require.NoError(t, err)
	type result struct {
		c   idempotency.Claim
		err error
	}
	blocked := make(chan result, 1)
	go func() {
		c, err := s.Claim(ctx, locked, fpA, time.Minute)
		blocked <- result{c, err}
	}()
	require.Eventually(t, func() bool {
		var waiting int
		err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'").Scan(&waiting)
		return err == nil && waiting > 0
	}, 5*time.Second, 10*time.Millisecond)

	cluster.Stop()

	r := <-blocked
	require.Error(t, r.err)
	assert.ErrorIs(t, r.err, idempotency.ErrUnavailable)
	assert.False(t, r.c.Acquired)

	c, err := s.Claim(ctx, key(), fpA, time.Minute)
	assert.ErrorIs(t, err, idempotency.ErrUnavailable)
	assert.False(t, c.Acquired)
	assert.ErrorIs(t, s.Renew(ctx, heldKey, held.Token, time.Minute), idempotency.ErrUnavailable)
	assert.ErrorIs(t, s.Complete(ctx, heldKey, held.Token, &idempotency.Response{Status: 200}, time.Minute), idempotency.ErrUnavailable)
	assert.ErrorIs(t, s.Release(ctx, heldKey, held.Token), idempotency.ErrUnavailable)
	assert.ErrorIs(t, s.Ping(ctx), idempotency.ErrUnavailable)
	_, err = s.Sweep(ctx)
	assert.ErrorIs(t, err, idempotency.ErrUnavailable)
	assert.ErrorIs(t, s.Release(ctx, heldKey, held.Token), idempotency.ErrUnavailable, "an outage is not a lost lease")
	assert.False(t, errors.Is(s.Release(ctx, heldKey, held.Token), idempotency.ErrLeaseLost))

	_, err = postgres.Open(ctx, cluster.DSN("postgres")+"&connect_timeout=2")
	assert.ErrorIs(t, err, idempotency.ErrUnavailable, "migration at start needs the database")
}

func TestClosedPoolIsUnavailable(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.Start(t))
	require.NoError(t, err)
	s := newStore(t, pool, postgres.WithJanitorInterval(0))
	k := key()
	held, err := s.Claim(ctx, k, fpA, time.Minute)
	require.NoError(t, err)
	pool.Close()

	c, err := s.Claim(ctx, key(), fpA, time.Minute)
	assert.ErrorIs(t, err, idempotency.ErrUnavailable)
	assert.False(t, c.Acquired)
	assert.ErrorIs(t, s.Complete(ctx, k, held.Token, &idempotency.Response{Status: 200}, time.Minute), idempotency.ErrUnavailable)
	assert.ErrorIs(t, s.Ping(ctx), idempotency.ErrUnavailable)
}

func TestContextErrorsAreUnavailable(t *testing.T) {
	s := newStore(t, newPool(t), postgres.WithJanitorInterval(0))
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	_, err := s.Claim(ctx, key(), fpA, time.Minute)
	assert.ErrorIs(t, err, idempotency.ErrUnavailable)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "the cause is kept")
	assert.ErrorIs(t, s.Renew(ctx, key(), "t", time.Minute), idempotency.ErrUnavailable)
}
