// Package signature holds what every request-signing scheme shares: the
// Request a scheme verifies and the Verified identity it establishes, the
// Scheme and Signer interfaces, key material (secrets, PEM and JWK public
// keys and the JOSE algorithm each is used with), the sentinel errors, and
// Transport, an http.RoundTripper that signs every attempt anew.
//
// The schemes live below it, one package each:
//
//   - hmacsig: the default "hmac" scheme, HMAC-SHA256 over the RG1 string
//     to sign (method, host, request-target, timestamp, nonce,
//     Idempotency-Key, body hash), and its Signer.
//   - jwtsig: request-bound JWTs (htm, htu, bsh claims) with per-key
//     algorithm allowlists and RFC 9449 DPoP proofs; jwks caches a JSON Web
//     Key Set fetched from a URL.
//   - httpsig: RFC 9421 HTTP Message Signatures with Content-Digest
//     (RFC 9530).
//   - webhooksig: the receiver presets of Standard Webhooks/Svix, Stripe,
//     GitHub, Slack and Shopify, whose delivery ids feed idempotency, and a
//     Signer that signs as the providers do, for tests.
//
// Schemes never touch a store: replay and idempotency checks run after a
// signature has verified. The packages stay within what the Yaegi
// interpreter runs, so the Traefik plugin can load them.
package signature
