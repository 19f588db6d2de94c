// Package idempotency is the dedupe layer: the first request with an
// Idempotency-Key runs and its full response is stored; a retry with the
// same key gets the stored response back without running again
// (draft-ietf-httpapi-idempotency-key-header, Stripe semantics).
//
// A record lives through these states:
//
//	absent -> in progress (lease, fencing token) -> completed (TTL)
//	                                            \-> released (absent again)
//
// Store is the persistence interface (Memory here; Redis and PostgreSQL in
// their own packages), all passing the suite in idempotencytest. Deduper is
// the HTTP step; Do gives message consumers the same at-most-once execution.
package idempotency
