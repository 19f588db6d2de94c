// Package resp is a small Redis client built on the standard library alone.
// It exists for the Traefik plugin: Traefik runs plugins in the Yaegi
// interpreter, which cannot load go-redis. Client satisfies
// redisstore.Client, so the plugin runs the stores of package redisstore,
// the binary's, on it: the same commands, keys and Lua scripts, byte for
// byte, and a plugin and the replayguard binary share one Redis: a nonce
// accepted by one is a replay for the other, and an idempotency record
// written by one is replayed by the other.
//
// # Client
//
// Client speaks RESP2 (no HELLO, no push messages) over TCP or TLS, with
// AUTH and SELECT on every new connection, a bounded pool, a deadline on
// every command (Options.Timeout, 200 ms by default, or the context's
// earlier one) and no state that outlives a broken connection: after any
// I/O or protocol error the connection is closed and the next call dials
// again, so a Redis restart heals without a new Client. Client.Do sends any
// command; the calls of redisstore.Client send a command, a pipeline, a
// Lua script (by EVALSHA, falling back to EVAL) and CONFIG GET on every
// master. Error replies are values of type *Error, whose Prefix is the
// Redis error code.
// Against a Redis Cluster the Client routes by the slot map it loads with
// CLUSTER SLOTS (a standalone server, which has no Cluster support, is
// asked once), follows MOVED and ASK redirects, and loads the map again
// after a MOVED or a failing node, so single-slot commands (every store
// call is one) work there too, and go to a promoted replica once it
// serves the slots of a master that died or stalled. Redirects are
// followed only to nodes the slot map announces, never from a standalone
// server (ErrRedirect), so credentials only go to the configured nodes and
// those the Cluster named.
//
// With Options.MasterName the Client runs in Sentinel mode: it asks the
// Sentinels for the master (SENTINEL GET-MASTER-ADDR-BY-NAME) and sends
// every command there, asking again when the master fails or answers
// READONLY (Sentinel demoted it; the refused command goes once more, to
// the master named then) and every ten seconds, so that it follows a
// failover as the binary's go-redis client does.
//
// The reply parser reads untrusted network input: lines are bounded by the
// read buffer (16 KiB), arrays nest at most 16 deep, and the bulk strings
// and array elements of one reply by Options.MaxReplyBytes (or the bound a
// store sets on its call, redisstore.Cmd.MaxReply), by default the largest
// record the stores write (layout.RecordBytes of the default
// idempotency.max_response_bytes, 2 MiB and 4 KiB), checked against each
// announced length before anything is allocated; memory is only taken as
// the bytes arrive.
//
// # The Yaegi subset
//
// The package imports only the standard library and replayguard's
// redisstore and redisstore/layout packages (a test checks it), and keeps to
// the Go that Yaegi runs: no generics, no min, max or clear, no iterators,
// no errors.As, no method sets borrowed from embedded standard library
// types, no nil among the values of a multiple assignment.
package resp
