// Package hmacsig is the default "hmac" scheme: HMAC-SHA256 with a key's
// secret over the RG1 string to sign (method byte for byte, host,
// request-target, timestamp, nonce, Idempotency-Key, body hash), carried in
// X-Key-Id, X-Timestamp, X-Nonce and X-Signature. Scheme verifies, trying
// every secret of the key (rotation) and comparing in constant time;
// Signer signs.
package hmacsig
