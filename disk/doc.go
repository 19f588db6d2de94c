// Package disk is the durable embedded store: nonces and idempotency
// records of one gateway in one file (go.etcd.io/bbolt), kept across
// restarts and crashes. It is the only package importing bbolt.
//
// A DB holds a directory; Nonces and Records are its nonce.Store and
// idempotency.Store, sharing the file, its commits and MaxBytes:
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
// is stored before the response is sent. One writer goroutine gathers the
// writes queued while the previous commit was syncing into the next one
// (group commit), so concurrent requests share an fsync. Without fsync a
// write survives a crash of the process but not of the machine.
//
// Semantics are those of the memory stores (the conformance suites
// noncetest and idempotencytest pass): exact replay answers, leases with
// fencing tokens, TTLs, and per-owner shares of MaxBytes answered with the
// packages' QuotaError. A store at MaxBytes, or a disk that refuses a
// write (full, read-only), fails calls with the packages' ErrUnavailable,
// and Ping fails until writes commit again.
//
// Entries are keyed in the file by owner and expiry (layout.go), so that
// a commit rewrites a few pages however many entries it carries, and are
// found by key through an index kept in memory (about 85 bytes an entry;
// MaxBytes bounds it), rebuilt at Open. Expired entries are removed by a
// reaper every ReapInterval, at most 2,000 per commit, and bbolt reuses
// the freed pages: the file grows to what the live entries need and stays
// there; it never shrinks.
//
// One store holds a directory at a time (a file lock): a second process
// waits WithLockTimeout and fails with ErrLocked; several gateways share a
// Redis or PostgreSQL store instead. Within one process a second Open of
// the directory waits for the first store's Close. A damaged file fails
// Open with ErrDamaged, naming the file and the recovery step, rather than
// starting empty.
package disk
