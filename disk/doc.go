// Package disk is the durable embedded store: nonces and idempotency
// records of one gateway in one directory, written through an embedded
// log-structured engine (github.com/cockroachdb/pebble), kept across
// restarts and crashes. It is the only package importing the engine.
//
// A DB holds a directory; Nonces and Records are its nonce.Store and
// idempotency.Store, sharing the store, its commits and MaxBytes:
//
//	db, err := disk.Open("/var/lib/replayguard", disk.WithKeyShare(1<<30))
//	...
//	defer db.Close()
//	guard, err := replayguard.New(cfg,
//		replayguard.WithNonceStore(db.Nonces()),
//		replayguard.WithIdempotencyStore(db.Records()))
//
// Durability: a write returns only after its commit; with fsync on (the
// default) that commit is on stable storage, so a nonce is recorded and an
// idempotency claim taken before the upstream runs, and a completed record
// is stored before the response is sent. One writer goroutine decides the
// writes queued while the last batch synced against an index kept in
// memory and appends them to the engine's log as one batch with one sync
// (group commit); a call is answered, and its batch's changes are shown to
// readers, once that sync is done. Without
// fsync a write survives a crash of the process but not of the machine.
//
// Semantics are those of the memory stores (the conformance suites
// noncetest and idempotencytest pass): exact replay answers, leases with
// fencing tokens, TTLs, and per-owner shares of MaxBytes answered with the
// packages' QuotaError. A store at MaxBytes fails calls with the packages'
// ErrUnavailable and Ping fails until the reaper frees room. A write the
// file system refuses for want of room or write access (a full or
// read-only disk) is tried again every 100 ms rather than returned to the
// engine, whose log cannot go on after a failed write: meanwhile calls
// time out as unavailable and Ping fails; once room is made, writes go on.
//
// Entries are keyed by owner and expiry (layout.go) and found by key
// through an index kept in memory (about 85 bytes an entry; MaxBytes
// bounds it), rebuilt at Open. Expired entries are removed by a reaper
// every ReapInterval, at most 2,000 per commit; the log is flushed to a
// table once it holds more than twice the live entries, and the engine's
// compactions drop what was removed, so the directory follows what the
// live entries need.
//
// One store holds a directory at a time (a file lock): a second process
// waits WithLockTimeout and fails with ErrLocked; several gateways share a
// Redis or PostgreSQL store instead. Within one process a second Open of
// the directory waits for the first store's Close. Every block of the
// engine's tables carries a checksum and Open reads every entry: a
// damaged, missing or foreign file fails Open with ErrDamaged, naming the
// directory and the recovery step, rather than starting empty.
package disk
