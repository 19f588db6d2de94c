// Package jwtsig is the "jwt" scheme: a JWT in a request header, bound to
// the request by its htm, htu and bsh claims, each key held to one
// algorithm, with RFC 9449 DPoP proofs; Signer and DPoPSigner mint tokens
// and proofs. The identity of a verified token is the configured key
// entry (or the JWKS entry), never a claim the signer chose; a token's sub
// is a subject within it.
package jwtsig
