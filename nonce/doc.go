// Package nonce records replay keys so that a signed request is accepted once.
//
// A Store records an Entry until its absolute expiry and rejects a second Add
// of the same scoped key with ErrReplayed. Memory is the embedded exact store;
// the bloom package provides a Bloom-filter store and the Redis stores live in
// their own package. Every store passes the conformance suite in noncetest.
package nonce
