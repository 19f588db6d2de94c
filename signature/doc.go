// Package signature verifies and produces request signatures.
//
// A Scheme extracts the key id, signed timestamp, replay key and signature
// from a Request and verifies the signature in constant time. HMAC is the
// default scheme (SPEC "hmac": RG1-HMAC-SHA256); HMACSigner and Transport are
// its signing side. Schemes never touch a store: replay and idempotency
// checks run after a signature has verified.
package signature
