// Package sigutil holds what the signature schemes share below their
// public API: key-type tests that behave the same compiled and under the
// Yaegi interpreter, hex digits, header helpers.
package sigutil

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"hash"
	"net/http"
	"strings"
	"sync"
)

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

// MACPool reuses keyed HMAC-SHA256 states of one secret: hmac.New per
// request costs two key schedules and several allocations; Reset restores
// the keyed state.
type MACPool struct {
	secret []byte
	pool   sync.Pool
}

// NewMACPool returns the pool of secret.
func NewMACPool(secret []byte) *MACPool {
	p := &MACPool{secret: append([]byte(nil), secret...)}
	p.pool.New = func() any { return hmac.New(sha256.New, p.secret) }
	return p
}

// Get returns a keyed state.
func (p *MACPool) Get() hash.Hash { return p.pool.Get().(hash.Hash) }

// Put resets h and returns it to the pool.
func (p *MACPool) Put(h hash.Hash) { h.Reset(); p.pool.Put(h) }

// WireHost returns the Host header net/http will send for req, which is
// what the server sees and verifies: req.Host, else the URL's host, with an
// IPv6 zone removed as net/http removes it. Non-ASCII names are rejected:
// net/http sends them in punycode, so sign with the xn-- form.
func WireHost(req *http.Request) (string, error) {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			return "", fmt.Errorf("signature: host %q is not ASCII; use its punycode (xn--) form", host)
		}
	}
	if strings.HasPrefix(host, "[") {
		if pct := strings.IndexByte(host, '%'); pct >= 0 {
			if end := strings.IndexByte(host[pct:], ']'); end >= 0 {
				host = host[:pct] + host[pct+end:]
			}
		}
	}
	return host, nil
}
