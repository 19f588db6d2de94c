// Package redisstore holds the Redis stores, shared by any number of
// gateway instances: Nonce (`nonce.mode: exact`), BloomNonce
// (`nonce.mode: bloom`) and Idempotency, with bloomcore.Shield
// (`nonce.local_shield`) in front of either nonce store, and Config, the
// `redis:` configuration section.
//
// The stores are written once, over Client: four calls (a command, a
// pipeline, a script run with EVALSHA falling back to EVAL, CONFIG GET on
// every master) that a Redis client satisfies. Package resp's Client, a
// standard-library RESP2 client, satisfies it directly; a go-redis client
// satisfies it through package goredis, which also builds that client from
// Config (standalone, Sentinel or Cluster) and is the only importer of
// go-redis. Key names, value formats, reply decoding and the Lua sources
// are in package layout, the Bloom arithmetic in package bloomcore.
//
// Given the nonce store it shares a Client with (WithNonceStore), the
// idempotency store is an idempotency.NonceClaimer: a covered request's
// nonce is added and its key claimed in one script run, on a standalone
// server or Sentinel's master (a Client implementing Standalone), and on a
// Cluster when both are tagged by principal (redis.tagging).
//
// The package imports only the standard library and replayguard's core
// packages, and keeps to the Go the Yaegi interpreter runs, so that the
// Traefik plugin runs these very stores (a test checks both).
//
// Every call is bounded by the store's timeout (redis.timeout), the
// client's retries included; a Redis error or timeout is reported wrapping
// nonce.ErrUnavailable or idempotency.ErrUnavailable, never as a replay.
// Commands whose repetition would change their answer (a Bloom BITFIELD or
// a script running one, an idempotency Complete or Release) are marked
// Cmd.Once and never sent twice; the others recognise their own earlier
// write by a per-call token.
// The stores pass the conformance suites of noncetest and idempotencytest
// on both clients, on a standalone server and on a Cluster.
package redisstore
