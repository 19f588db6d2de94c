// Package httpsig is the "rfc9421" scheme: RFC 9421 HTTP Message
// Signatures (Signature-Input and Signature), with Content-Digest (RFC
// 9530) binding the body, the six algorithms of RFC 9421, and a Signer
// that reproduces the RFC's Appendix B examples.
package httpsig
