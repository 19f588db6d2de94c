// Package postgres is the PostgreSQL idempotency.Store, for gateways that
// share their records through a database.
//
// Records live in one table (default replayguard_idempotency; the DDL is
// schema.sql, applied at start unless WithoutMigrate). Each Store method is
// one SQL statement: Claim is an INSERT ... ON CONFLICT (key) DO UPDATE on
// the primary key that takes a record over only when it is dead for the
// request, and reads the live record in the same statement otherwise;
// Renew, Complete and Release are fenced by the holder's token. Leases and
// expiry use the database clock. A janitor goroutine deletes expired
// records in batches through the expires_at index.
//
// Every database error, a cancelled or expired context included, wraps
// idempotency.ErrUnavailable with the cause kept.
//
// Statements are prepared and cached per connection (pgx's default); behind
// a transaction-pooling proxy such as PgBouncer add
// default_query_exec_mode=exec to the DSN.
package postgres
