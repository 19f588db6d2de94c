// Package goredis runs the stores of package redisstore on go-redis: Client
// is a go-redis UniversalClient as a redisstore.Client, and New builds the
// go-redis client for a `redis:` configuration (standalone, Sentinel or
// Cluster). It is the only package of replayguard that imports go-redis.
//
// A command the stores mark Once (a Bloom BITFIELD, an idempotency Complete
// or Release) is never retried by go-redis; the others are, within the
// stores' deadline of redis.timeout.
package goredis
