// Package redisstore holds the Redis stores, shared by any number of
// gateway instances: Nonce (`nonce.mode: exact`), BloomNonce
// (`nonce.mode: bloom`), Shield (`nonce.local_shield`) in front of either,
// and Idempotency. It is the only package that imports go-redis; NewClient
// builds the go-redis UniversalClient for a `redis:` configuration
// (standalone, Sentinel or Cluster).
//
// Key names, value formats and the Lua sources live in package layout, which
// needs nothing but the standard library, so that a client without go-redis
// produces the same keys and runs the same scripts.
//
// Every call is bounded by the store's timeout (redis.timeout), go-redis's
// retries included; a Redis error or timeout is reported wrapping
// nonce.ErrUnavailable or idempotency.ErrUnavailable, never as a replay.
// Commands whose repetition would change their answer (a Bloom BITFIELD, an
// idempotency Complete or Release) are never retried; the others recognise
// their own earlier write by a per-call token. The stores pass the
// conformance suites of noncetest and idempotencytest on a standalone
// server and on a Cluster.
package redisstore
