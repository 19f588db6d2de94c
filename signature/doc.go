// Package signature verifies and produces request signatures.
//
// A Scheme extracts the key id, signed timestamp, replay key and signature
// from a Request and verifies the signature (MACs in constant time). The
// schemes:
//
//   - HMAC: the default "hmac" scheme, HMAC-SHA256 over the RG1 string to
//     sign (method, host, request-target, timestamp, nonce, Idempotency-Key,
//     body hash); HMACSigner and Transport are its signing side.
//   - JWT: request-bound JWTs (htm, htu, bsh claims) with per-key algorithm
//     allowlists, JWKS, and RFC 9449 DPoP proofs; JWTSigner, DPoPSigner.
//   - RFC9421: HTTP Message Signatures with Content-Digest (RFC 9530);
//     RFC9421Signer. Structured fields are parsed by package sfv.
//   - Webhook: the receiver presets of Standard Webhooks/Svix, Stripe,
//     GitHub, Slack and Shopify, whose delivery ids feed idempotency;
//     WebhookSigner signs as the providers do, for tests.
//
// Schemes never touch a store: replay and idempotency checks run after a
// signature has verified. The package stays within what the Yaegi
// interpreter runs, so the Traefik plugin can load it.
package signature
