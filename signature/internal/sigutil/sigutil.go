// Package sigutil holds what the signature schemes share below their
// public API: key-type tests that behave the same compiled and under the
// Yaegi interpreter, hex digits, header helpers.
package sigutil

import "crypto/ed25519"

// SecretKey returns key as a shared secret: a []byte that is not an
// Ed25519 key. A type switch, not v.([]byte): under the Yaegi interpreter
// the assertion also succeeds on the named byte-slice types.
func SecretKey(key any) ([]byte, bool) {
	switch k := key.(type) {
	case ed25519.PublicKey, ed25519.PrivateKey:
		return nil, false
	case []byte:
		return k, true
	}
	return nil, false
}

// Ed25519Public returns key as an Ed25519 public key.
func Ed25519Public(key any) (ed25519.PublicKey, bool) {
	switch k := key.(type) {
	case ed25519.PublicKey:
		return k, true
	case ed25519.PrivateKey, []byte:
		return nil, false
	}
	return nil, false
}

// Ed25519Private returns key as an Ed25519 private key.
func Ed25519Private(key any) (ed25519.PrivateKey, bool) {
	switch k := key.(type) {
	case ed25519.PrivateKey:
		return k, true
	case ed25519.PublicKey, []byte:
		return nil, false
	}
	return nil, false
}

// IsHex reports whether c is a hexadecimal digit.
func IsHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// Unhex returns the value of the hexadecimal digit c.
func Unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// First returns the first of a header's values, or "".
func First(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}
