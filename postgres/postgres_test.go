package postgres_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/idempotency/idempotencytest"
	"github.com/replayguard/replayguard/postgres"
	"github.com/replayguard/replayguard/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var (
	fpA = idempotency.Fingerprint(sha256.Sum256([]byte("request A")))
	fpB = idempotency.Fingerprint(sha256.Sum256([]byte("request B")))
)

// newPool returns a pool on the test database.
func newPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), pgtest.Start(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// freshTable returns a table name no other test uses, dropped through pool
// when the test ends.
func freshTable(t testing.TB, pool *pgxpool.Pool) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "rg_test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), "DROP TABLE IF EXISTS "+name) })
	return name
}

func newStore(t testing.TB, pool *pgxpool.Pool, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	s, err := postgres.New(context.Background(), pool, opts...)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func key() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "principal\x00" + hex.EncodeToString(b[:])
}

func TestConformance(t *testing.T) {
	pool := newPool(t)
	idempotencytest.Run(t, func(t *testing.T) idempotency.Store { return newStore(t, pool) })
}

func countRows(t *testing.T, pool *pgxpool.Pool, table string) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n))
	return n
}

func TestSweepDeletesExpiredOnly(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	table := freshTable(t, pool)
	s := newStore(t, pool, postgres.WithTable(table), postgres.WithJanitorInterval(0), postgres.WithJanitorBatch(3))

	var live []string
	for range 10 { // in progress, lease over
		_, err := s.Claim(ctx, key(), fpA, time.Millisecond)
		require.NoError(t, err)
	}
	for range 4 { // completed, TTL over
		k := key()
		c, err := s.Claim(ctx, k, fpA, time.Minute)
		require.NoError(t, err)
		require.NoError(t, s.Complete(ctx, k, c.Token, &idempotency.Response{Status: 200}, time.Millisecond))
	}
	for range 3 { // completed, live
		k := key()
		c, err := s.Claim(ctx, k, fpA, time.Minute)
		require.NoError(t, err)
		require.NoError(t, s.Complete(ctx, k, c.Token, &idempotency.Response{Status: 200}, time.Hour))
		live = append(live, k)
	}
	for range 2 { // in progress, live
		k := key()
		_, err := s.Claim(ctx, k, fpA, time.Hour)
		require.NoError(t, err)
		live = append(live, k)
	}
	time.Sleep(20 * time.Millisecond)
	require.Equal(t, 19, countRows(t, pool, table))

	n, err := s.Sweep(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(14), n, "every expired record, across batches of 3")
	assert.Equal(t, 5, countRows(t, pool, table))
	for _, k := range live {
		c, err := s.Claim(ctx, k, fpA, time.Minute)
		require.NoError(t, err)
		assert.False(t, c.Acquired, "live records survive the sweep")
	}
	n, err = s.Sweep(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)
}

func TestJanitorRunsAndStopsOnClose(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	table := freshTable(t, pool)
	var sweepErrs atomic.Int64
	s, err := postgres.New(ctx, pool, postgres.WithTable(table), postgres.WithJanitorInterval(20*time.Millisecond),
		postgres.WithSweepErrorHandler(func(error) { sweepErrs.Add(1) }))
	require.NoError(t, err)
	for range 5 {
		_, err := s.Claim(ctx, key(), fpA, time.Millisecond)
		require.NoError(t, err)
	}
	liveKey := key()
	_, err = s.Claim(ctx, liveKey, fpA, time.Hour)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return countRows(t, pool, table) == 1 }, 5*time.Second, 10*time.Millisecond)
	s.Close()
	s.Close()
	assert.Zero(t, sweepErrs.Load())

	// After Close the janitor no longer runs.
	s2 := newStore(t, pool, postgres.WithTable(table), postgres.WithJanitorInterval(0))
	_, err = s2.Claim(ctx, key(), fpA, time.Millisecond)
	require.NoError(t, err)
	time.Sleep(100 * time.Millisecond)
	assert.Equal(t, 2, countRows(t, pool, table))
}

func TestMigrationIsIdempotentAndSafeConcurrently(t *testing.T) {
	ctx := context.Background()
	admin := newPool(t)
	// A schema of its own, so that the shared replayguard_schema_version
	// table is created by the racing stores too.
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "rg_test_" + hex.EncodeToString(b[:])
	_, err := admin.Exec(ctx, "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE") })

	cfg, err := pgxpool.ParseConfig(pgtest.Start(t))
	require.NoError(t, err)
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	const n = 4
	pools := make([]*pgxpool.Pool, n)
	for i := range pools {
		pools[i], err = pgxpool.NewWithConfig(ctx, cfg)
		require.NoError(t, err)
		t.Cleanup(pools[i].Close)
		require.NoError(t, pools[i].Ping(ctx))
	}
	stores := make([]*postgres.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = postgres.New(ctx, pools[i], postgres.WithJanitorInterval(0))
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i], "store %d", i)
		stores[i].Close()
	}
	// Again, on the existing schema.
	s := newStore(t, pools[0], postgres.WithJanitorInterval(0))
	require.NoError(t, s.Migrate(ctx))

	var version int
	require.NoError(t, pools[0].QueryRow(ctx, "SELECT version FROM replayguard_schema_version WHERE name = 'replayguard_idempotency'").Scan(&version))
	assert.Equal(t, postgres.SchemaVersion, version)
	var tables, indexes int
	require.NoError(t, admin.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = $1", schema).Scan(&tables))
	require.NoError(t, admin.QueryRow(ctx, "SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND indexname = 'replayguard_idempotency_expires_at_idx'", schema).Scan(&indexes))
	assert.Equal(t, 2, tables)
	assert.Equal(t, 1, indexes)

	c, err := s.Claim(ctx, key(), fpA, time.Minute)
	require.NoError(t, err)
	assert.True(t, c.Acquired)
}

func TestWithoutMigrate(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	s := newStore(t, pool, postgres.WithTable(freshTable(t, pool)), postgres.WithoutMigrate())
	_, err := s.Claim(ctx, key(), fpA, time.Minute)
	require.ErrorIs(t, err, idempotency.ErrUnavailable, "the table was never created")

	// Applying Schema by hand is what WithoutMigrate expects.
	table := freshTable(t, pool)
	_, err = pool.Exec(ctx, postgres.Schema(table))
	require.NoError(t, err)
	s = newStore(t, pool, postgres.WithTable(table), postgres.WithoutMigrate())
	c, err := s.Claim(ctx, key(), fpA, time.Minute)
	require.NoError(t, err)
	assert.True(t, c.Acquired)

	// New does not touch the database: a store starts while it is down.
	dead, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:1/none?connect_timeout=1")
	require.NoError(t, err)
	defer dead.Close()
	s = newStore(t, dead, postgres.WithoutMigrate())
	require.ErrorIs(t, s.Ping(ctx), idempotency.ErrUnavailable)
}

func TestOptionsValidated(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	for _, name := range []string{"", "Upper", "1abc", "a-b", "a.b", `a"b`, "a b", "x123456789012345678901234567890123456789012345678"} {
		_, err := postgres.New(ctx, pool, postgres.WithTable(name))
		assert.Error(t, err, "table %q", name)
	}
	_, err := postgres.New(ctx, pool, postgres.WithJanitorBatch(0))
	assert.Error(t, err)
	_, err = postgres.New(ctx, nil)
	assert.Error(t, err)
	_, err = postgres.Open(ctx, "::not a dsn")
	assert.Error(t, err)
}

func TestHeadersRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, newPool(t))
	h := http.Header{
		"X-Multi":        {"3", "1", "2", "1"},
		"Content-Type":   {"application/json; charset=utf-8"},
		"X-Empty-Value":  {""},
		"X-Latin1":       {"caf\xe9", "\xff\xfe"},
		"X-Nul":          {"a\x00b"},
		"Link":           {`</a>; rel="next"`, `</b>; rel="prev"`},
		"nonCanonical":   {"kept as given"},
		"X-Many-Commas,": {"a, b", "c"},
	}
	k := key()
	c, err := s.Claim(ctx, k, fpA, time.Minute)
	require.NoError(t, err)
	require.NoError(t, s.Complete(ctx, k, c.Token, &idempotency.Response{Status: 299, Header: h, Body: []byte("x")}, time.Minute))
	got, err := s.Claim(ctx, k, fpA, time.Minute)
	require.NoError(t, err)
	require.NotNil(t, got.Existing.Response)
	assert.Equal(t, h, got.Existing.Response.Header)
	assert.Equal(t, 299, got.Existing.Response.Status)

	// A nil response completes with an empty one.
	k = key()
	c, err = s.Claim(ctx, k, fpA, time.Minute)
	require.NoError(t, err)
	require.NoError(t, s.Complete(ctx, k, c.Token, nil, time.Minute))
	got, err = s.Claim(ctx, k, fpA, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, &idempotency.Response{Header: http.Header{}, Body: []byte{}}, got.Existing.Response)
}

func TestTwoInstancesOneWinner(t *testing.T) {
	ctx := context.Background()
	pool1, pool2 := newPool(t), newPool(t)
	table := freshTable(t, pool1)
	s1 := newStore(t, pool1, postgres.WithTable(table))
	s2 := newStore(t, pool2, postgres.WithTable(table))
	stores := []*postgres.Store{s1, s2}

	race := func(t *testing.T, k string, fps ...idempotency.Fingerprint) (winners int64, tokens []string) {
		const n = 24
		var won atomic.Int64
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				c, err := stores[i%2].Claim(ctx, k, fps[i%len(fps)], time.Minute)
				if !assert.NoError(t, err) {
					return
				}
				if c.Acquired {
					won.Add(1)
					mu.Lock()
					tokens = append(tokens, c.Token)
					mu.Unlock()
				} else {
					assert.NotNil(t, c.Existing)
				}
			})
		}
		close(start)
		wg.Wait()
		return won.Load(), tokens
	}

	for range 5 {
		winners, _ := race(t, key(), fpA, fpB)
		assert.Equal(t, int64(1), winners, "fresh key")
	}

	// Takeover of an expired lease: still one winner, and only it holds.
	k := key()
	old, err := s1.Claim(ctx, k, fpA, time.Millisecond)
	require.NoError(t, err)
	require.True(t, old.Acquired)
	time.Sleep(10 * time.Millisecond)
	winners, tokens := race(t, k, fpA)
	require.Equal(t, int64(1), winners, "takeover")
	require.ErrorIs(t, s2.Complete(ctx, k, old.Token, &idempotency.Response{Status: 200}, time.Minute), idempotency.ErrLeaseLost)
	require.NoError(t, s2.Complete(ctx, k, tokens[0], &idempotency.Response{Status: 200}, time.Minute))
}

func TestRenewAfterLeaseRanOutButNotTakenOver(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, newPool(t), postgres.WithJanitorInterval(0))
	k := key()
	c, err := s.Claim(ctx, k, fpA, time.Millisecond)
	require.NoError(t, err)
	time.Sleep(10 * time.Millisecond)
	// Fencing is by token only: nobody took the record, so the holder may
	// renew and complete.
	require.NoError(t, s.Renew(ctx, k, c.Token, time.Minute))
	other, err := s.Claim(ctx, k, fpB, time.Minute)
	require.NoError(t, err)
	assert.False(t, other.Acquired, "renewal brought the record back to life")
	require.NoError(t, s.Complete(ctx, k, c.Token, &idempotency.Response{Status: 200}, time.Minute))
}

func TestUsesDatabaseClock(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	table := freshTable(t, pool)
	s := newStore(t, pool, postgres.WithTable(table))
	k := key()
	_, err := s.Claim(ctx, k, fpA, time.Hour)
	require.NoError(t, err)
	var leaseLeft, expiresLeft time.Duration
	require.NoError(t, pool.QueryRow(ctx, "SELECT lease_until - now(), expires_at - now() FROM "+table+" WHERE key = $1", []byte(k)).Scan(&leaseLeft, &expiresLeft))
	assert.InDelta(t, time.Hour.Seconds(), leaseLeft.Seconds(), 5)
	assert.InDelta(t, time.Hour.Seconds(), expiresLeft.Seconds(), 5)
}
