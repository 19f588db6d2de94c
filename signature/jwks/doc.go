// Package jwks fetches a JSON Web Key Set (RFC 7517) from a URL and caches
// it: an unknown key id triggers a fetch at most once per interval, an old
// set is refreshed in the background, a failed fetch keeps the previous
// keys. The whole set is one key entry of the jwt scheme.
package jwks
