// Package reliability is replayguard's reliability suite: tests that drive
// real `replayguard serve` processes (built once per run with `go build`)
// in front of a counting upstream, with real redis-server processes
// (standalone, or a Cluster of three masters with replicas) started and
// killed by redis/redistest, or on the disk store in a directory of the
// test's. It holds no library code.
//
// Each scenario proves what an operator relies on, by counting rather than
// timing:
//
//   - Gateways sharing one Redis (exact and Bloom nonce modes): signed
//     load spread over several gateways, with the same signed request sent
//     to a second gateway concurrently and later, and Idempotency-Key
//     retries re-signed to other gateways. The upstream records every nonce
//     and key it receives: no nonce reaches it twice (replays accepted: 0)
//     and no key runs twice (executions per key: 1); replayed responses
//     equal the original byte for byte.
//   - Redis killed under load and restarted on its port (append-only file,
//     fsync always), fail_mode closed: during the outage every request is
//     503 store_unavailable, never 2xx; the gateways serve again without a
//     restart; nonces accepted before the crash stay replays and completed
//     idempotency records still replay (records lost: 0).
//   - Cluster failover: a master is killed under load. Load pauses just
//     before the kill until every replica has acknowledged its master's
//     replication offset, so what was acknowledged before the kill is on
//     the replica that takes over; the window of 503s is measured, and the
//     same zero-replay, zero-loss counts hold. Writes a master acknowledges
//     after the replica last caught up can be lost by Redis's asynchronous
//     replication (see redis.TestCluster/FailoverLosesWhatTheReplicaMissed);
//     that is the guarantee's boundary.
//   - Slow clients: connections sending headers or bodies a byte at a time
//     are cut by the server's read timeouts while signed traffic keeps
//     being answered.
//   - Oversized input: headers over 64 KiB get 431, bodies over
//     max_body_bytes get 413 body_too_large (with Content-Length and
//     chunked); nothing reaches the upstream or Redis.
//   - Soak: sustained load on the memory stores with max_entries and
//     idempotency on; the heap after warm-up and at the end stay within a
//     stated bound and goroutines return to their idle count.
//   - A gateway on the disk store (fsync on) killed with SIGKILL under load
//     and restarted on the same directory and address: every request
//     answered 2xx before the kill is sent again and refused as a replay,
//     every operation answered before it is retried and gets its stored
//     response byte for byte without running again (records lost: 0).
//     Operations left unanswered by the kill, some of them held at the
//     upstream across it, are counted apart: those that had run get 409
//     while their lease lasts and run once more after it.
//   - Disk soak: sustained load on the disk store with a short TTL and
//     window for 20 TTLs; the file (sampled each second) after 20 TTLs is
//     within 10% of its size after 10 while expired entries keep being
//     reclaimed, with the same zero-replay, zero-rerun counts.
//
// # Running
//
//	go test -race ./reliability/                                # short form, about 140 s on 2 cores
//	RELIABILITY=full go test -race -timeout 40m ./reliability/  # about fourteen minutes
//	RELIABILITY_REPORT=/tmp/reliability.md go test ./reliability/
//
// The short form is the default (fewer gateways, shorter phases, lower
// rates, a 40 s disk soak); RELIABILITY=full runs more gateways at higher
// rates and several-minute soaks. With RELIABILITY_REPORT set, every
// scenario appends one Markdown table row of its figures to that file.
// `go test -short` skips the suite. The gateways are built without the race detector, so
// that their heap figures are those of a production build; the race
// detector covers the test process. redis-server (and redis-cli for the
// Cluster) must be installed: without them the tests fail under CI=true and
// are skipped otherwise.
package reliability
