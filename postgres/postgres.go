package postgres

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/idempotency"
)

// Defaults of the options.
const (
	// DefaultTable is the table the records live in.
	DefaultTable = "replayguard_idempotency"
	// DefaultJanitorInterval is how often expired records are deleted.
	DefaultJanitorInterval = time.Minute
	// DefaultJanitorBatch is how many expired records one DELETE removes.
	DefaultJanitorBatch = 1000
)

// SchemaVersion is the version of schema.sql, recorded in the
// replayguard_schema_version table under the table's name.
const SchemaVersion = 1

// claimAttempts bounds how often Claim runs its statement when the record
// it conflicted with changed between the statement's snapshot and its
// insert (a concurrent claim, takeover or release).
const claimAttempts = 8

// maxTableLen keeps the derived index name within PostgreSQL's 63 bytes.
const maxTableLen = 63 - len("_expires_at_idx")

var tableName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

//go:embed schema.sql
var schemaSQL string

// migrationLock is the advisory lock held while the schema is applied.
const migrationLock = `SELECT pg_advisory_xact_lock(hashtextextended('replayguard.schema', 0))`

// Store is the PostgreSQL idempotency.Store. Every method is one SQL
// statement; deduplication rests on the table's primary key, and leases and
// expiry are read from the database clock, so every gateway instance sharing
// the database agrees on them. Expired records are deleted by a janitor
// goroutine, never on the request path; Close stops it. Safe for concurrent
// use.
type Store struct {
	pool     *pgxpool.Pool
	ownsPool bool
	table    string
	cfg      config

	claimSQL, renewSQL, completeSQL, releaseSQL, sweepSQL string

	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

var (
	_ idempotency.Store  = (*Store)(nil)
	_ idempotency.Pinger = (*Store)(nil)
)

// Option configures a Store.
type Option func(*config)

type config struct {
	table           string
	migrate         bool
	janitorInterval time.Duration
	janitorBatch    int
	onSweepError    func(error)
}

// WithTable sets the table name: lowercase letters, digits and
// underscores, not starting with a digit, at most 48 characters.
// Default DefaultTable ("replayguard_idempotency").
func WithTable(name string) Option {
	return func(c *config) { c.table = name }
}

// WithoutMigrate makes the store use the table as it finds it, without
// applying schema.sql at start and without touching the database in New.
// Use it when the role the gateway connects with may not create tables and
// a DBA applies schema.sql. Default: the schema is applied at start.
func WithoutMigrate() Option {
	return func(c *config) { c.migrate = false }
}

// WithJanitorInterval sets how often the janitor deletes expired records;
// zero or less disables the janitor (call Sweep yourself, or run the
// janitor of another instance). Default DefaultJanitorInterval (1m).
func WithJanitorInterval(d time.Duration) Option {
	return func(c *config) { c.janitorInterval = d }
}

// WithJanitorBatch sets how many expired records one DELETE removes; the
// janitor repeats the DELETE until a batch comes back short. Default
// DefaultJanitorBatch (1000).
func WithJanitorBatch(n int) Option {
	return func(c *config) { c.janitorBatch = n }
}

// WithSweepErrorHandler sets a function called with each error of the
// janitor's background sweeps (the next tick tries again). Default: errors
// are dropped.
func WithSweepErrorHandler(f func(error)) Option {
	return func(c *config) { c.onSweepError = f }
}

// Open connects to the database dsn (a PostgreSQL URL or key=value
// string, as pgxpool.ParseConfig reads it) and returns a store on a pool of
// its own, which Close closes.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse dsn: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("%w: postgres: connect: %w", idempotency.ErrUnavailable, err)
	}
	s, err := newStore(ctx, pool, true, opts)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// New returns a store on pool, applying the schema first unless
// WithoutMigrate is given. Close stops the janitor but leaves pool open.
func New(ctx context.Context, pool *pgxpool.Pool, opts ...Option) (*Store, error) {
	if pool == nil {
		return nil, errors.New("postgres: nil pool")
	}
	return newStore(ctx, pool, false, opts)
}

func newStore(ctx context.Context, pool *pgxpool.Pool, owns bool, opts []Option) (*Store, error) {
	cfg := config{
		table:           DefaultTable,
		migrate:         true,
		janitorInterval: DefaultJanitorInterval,
		janitorBatch:    DefaultJanitorBatch,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if !tableName.MatchString(cfg.table) || len(cfg.table) > maxTableLen {
		return nil, fmt.Errorf("postgres: table name %q: want [a-z_][a-z0-9_]*, at most %d characters", cfg.table, maxTableLen)
	}
	if cfg.janitorBatch <= 0 {
		return nil, fmt.Errorf("postgres: janitor batch %d: want at least 1", cfg.janitorBatch)
	}
	s := &Store{pool: pool, ownsPool: owns, table: cfg.table, cfg: cfg}
	s.prepareSQL()
	if cfg.migrate {
		if err := s.Migrate(ctx); err != nil {
			return nil, err
		}
	}
	jctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.done = make(chan struct{})
	if cfg.janitorInterval > 0 {
		go s.janitor(jctx)
	} else {
		close(s.done)
	}
	return s, nil
}

// Migrate applies schema.sql for the store's table in one transaction under
// the schema advisory lock. It is idempotent; New calls it unless
// WithoutMigrate is given.
func (s *Store) Migrate(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return unavailable("migrate", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, migrationLock); err != nil {
		return unavailable("migrate", err)
	}
	if _, err := tx.Exec(ctx, Schema(s.table)); err != nil {
		return unavailable("migrate", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return unavailable("migrate", err)
	}
	return nil
}

// Schema returns the DDL the store applies at start (the embedded
// schema.sql) written for table; "" means DefaultTable.
func Schema(table string) string {
	if table == "" || table == DefaultTable {
		return schemaSQL
	}
	return strings.ReplaceAll(schemaSQL, DefaultTable, table)
}

// Table returns the name of the store's table.
func (s *Store) Table() string { return s.table }

// prepareSQL writes the statements for the store's table. Leases and TTLs
// travel as microseconds: $n::bigint * interval '1 microsecond'.
func (s *Store) prepareSQL() {
	t := s.table
	// The upsert takes the row over only when the conflicting record is
	// dead for this request; otherwise it returns nothing and the second
	// branch reads the record. Both run on the statement's snapshot, which
	// may predate a row the upsert conflicted with: the read then finds no
	// row (or one this request could have taken over) and Claim runs the
	// statement again.
	s.claimSQL = `WITH claimed AS (
    INSERT INTO ` + t + ` AS r (key, fingerprint, state, token, lease_until, expires_at, created_at, updated_at)
    VALUES ($1, $2, 1, $3, now() + $4::bigint * interval '1 microsecond', now() + $4::bigint * interval '1 microsecond', now(), now())
    ON CONFLICT (key) DO UPDATE
    SET fingerprint = excluded.fingerprint, state = 1, token = excluded.token,
        lease_until = excluded.lease_until, expires_at = excluded.expires_at,
        status = NULL, headers = NULL, body = NULL,
        created_at = excluded.created_at, updated_at = excluded.updated_at
    WHERE (r.state = 1 AND r.lease_until <= now() AND r.fingerprint = excluded.fingerprint)
       OR r.expires_at <= now()
    RETURNING 1
)
SELECT true, NULL::smallint, NULL::bytea, NULL::integer, NULL::bytea, NULL::bytea FROM claimed
UNION ALL
SELECT false, r.state, r.fingerprint, r.status, r.headers, r.body
FROM ` + t + ` r
WHERE r.key = $1
  AND NOT EXISTS (SELECT FROM claimed)
  AND NOT ((r.state = 1 AND r.lease_until <= now() AND r.fingerprint = $2) OR r.expires_at <= now())`

	s.renewSQL = `UPDATE ` + t + `
SET lease_until = now() + $3::bigint * interval '1 microsecond',
    expires_at = greatest(expires_at, now() + $3::bigint * interval '1 microsecond'),
    updated_at = now()
WHERE key = $1 AND token = $2 AND state = 1`

	s.completeSQL = `UPDATE ` + t + `
SET state = 2, token = NULL, lease_until = NULL,
    expires_at = now() + $3::bigint * interval '1 microsecond',
    status = $4, headers = $5, body = $6, updated_at = now()
WHERE key = $1 AND token = $2 AND state = 1`

	s.releaseSQL = `DELETE FROM ` + t + `
WHERE key = $1 AND token = $2 AND state = 1`

	// SKIP LOCKED leaves rows a claim is taking over (and other janitors'
	// rows) alone; the outer expires_at test is re-evaluated on the current
	// row version, so a record taken over after the subquery read it is
	// not deleted.
	s.sweepSQL = `DELETE FROM ` + t + `
WHERE key IN (
    SELECT key FROM ` + t + `
    WHERE expires_at <= now()
    ORDER BY expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
AND expires_at <= now()`
}

// Claim implements idempotency.Store.
func (s *Store) Claim(ctx context.Context, key string, fp idempotency.Fingerprint, lease time.Duration) (idempotency.Claim, error) {
	token := idempotency.NewToken()
	for range claimAttempts {
		var (
			acquired bool
			state    *int16
			gotFP    []byte
			status   *int32
			headers  []byte
			body     []byte
		)
		err := s.pool.QueryRow(ctx, s.claimSQL, []byte(key), fp[:], token, micros(lease)).
			Scan(&acquired, &state, &gotFP, &status, &headers, &body)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return idempotency.Claim{}, unavailable("claim", err)
		}
		if acquired {
			return idempotency.Claim{Acquired: true, Token: token}, nil
		}
		rec, err := record(state, gotFP, status, headers, body)
		if err != nil {
			return idempotency.Claim{}, unavailable("claim", err)
		}
		return idempotency.Claim{Existing: rec}, nil
	}
	return idempotency.Claim{}, fmt.Errorf("%w: postgres: claim: record kept changing over %d attempts", idempotency.ErrUnavailable, claimAttempts)
}

func record(state *int16, fp []byte, status *int32, headers, body []byte) (*idempotency.Record, error) {
	if state == nil || len(fp) != len(idempotency.Fingerprint{}) {
		return nil, errors.New("malformed record")
	}
	rec := &idempotency.Record{State: idempotency.State(*state)}
	copy(rec.Fingerprint[:], fp)
	if rec.State != idempotency.StateCompleted {
		return rec, nil
	}
	h, err := decodeHeader(headers)
	if err != nil {
		return nil, err
	}
	if h == nil {
		h = http.Header{}
	}
	if body == nil {
		body = []byte{}
	}
	resp := &idempotency.Response{Header: h, Body: body}
	if status != nil {
		resp.Status = int(*status)
	}
	rec.Response = resp
	return rec, nil
}

// Renew implements idempotency.Store.
func (s *Store) Renew(ctx context.Context, key, token string, lease time.Duration) error {
	return s.exec(ctx, "renew", s.renewSQL, []byte(key), token, micros(lease))
}

// Complete implements idempotency.Store.
func (s *Store) Complete(ctx context.Context, key, token string, resp *idempotency.Response, ttl time.Duration) error {
	if resp == nil {
		resp = &idempotency.Response{}
	}
	body := resp.Body
	if body == nil {
		body = []byte{}
	}
	return s.exec(ctx, "complete", s.completeSQL, []byte(key), token, micros(ttl), int32(resp.Status), encodeHeader(resp.Header), body)
}

// Release implements idempotency.Store.
func (s *Store) Release(ctx context.Context, key, token string) error {
	return s.exec(ctx, "release", s.releaseSQL, []byte(key), token)
}

func (s *Store) exec(ctx context.Context, op, sql string, args ...any) error {
	tag, err := s.pool.Exec(ctx, sql, args...)
	if err != nil {
		return unavailable(op, err)
	}
	if tag.RowsAffected() == 0 {
		return idempotency.ErrLeaseLost
	}
	return nil
}

// Ping implements idempotency.Pinger: it reports whether the database
// answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// Close stops the janitor and waits for it, then closes the pool if Open
// created it. A pool passed to New stays open.
func (s *Store) Close() {
	s.closeOnce.Do(func() {
		s.stop()
		<-s.done
		if s.ownsPool {
			s.pool.Close()
		}
	})
}

func micros(d time.Duration) int64 { return d.Microseconds() }

func unavailable(op string, err error) error {
	return fmt.Errorf("%w: postgres: %s: %w", idempotency.ErrUnavailable, op, err)
}

// DefaultTimeout bounds each store call of a Config without a timeout.
const DefaultTimeout = time.Second

// Config is the `postgres:` section of a configuration: the database the
// idempotency store (idempotency.store: postgres) keeps its records in.
type Config struct {
	// DSN is a libpq connection string or URL. Required by the store.
	DSN string `yaml:"dsn" json:"dsn,omitempty"`
	// Timeout bounds each store call. Default 1s (DefaultTimeout).
	Timeout replayguard.Duration `yaml:"timeout" json:"timeout,omitempty"`
}

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = replayguard.Duration(DefaultTimeout)
	}
	return c
}

// Validate checks c, each problem naming its field.
func (c Config) Validate() error {
	if c.Timeout < 0 {
		return &replayguard.FieldError{Field: "postgres.timeout", Err: errors.New("must be positive")}
	}
	return nil
}
