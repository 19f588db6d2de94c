// Package sigutil holds what the signature schemes share below their
// public API: key-type tests that behave the same compiled and under the
// Yaegi interpreter, hex digits, header helpers.
package sigutil

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
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

// MAC holds a keyed HMAC-SHA256 state taken from a MACPool, so that a
// buffer reused across requests (one from a sync.Pool) keeps the state of
// the secret it last served. The zero value holds none.
type MAC struct {
	pool *MACPool
	h    hash.Hash
}

// AppendMAC appends the HMAC-SHA256 of msg under p's secret to dst, with
// the state m holds (first taken from p when m holds another secret's).
//
// It is a function, not a method, as the schemes' other hot helpers: under
// the Yaegi interpreter (the Traefik plugin) calling a method of an
// interpreted type builds a reflect.MakeFunc wrapper on every call,
// several times the cost of a function call.
func AppendMAC(m *MAC, p *MACPool, dst, msg []byte) []byte {
	if m.pool != p {
		takeMAC(m, p)
	}
	m.h.Write(msg)
	dst = m.h.Sum(dst)
	m.h.Reset()
	return dst
}

// takeMAC gives the state m holds back to its pool and takes one of p.
func takeMAC(m *MAC, p *MACPool) {
	if m.pool != nil {
		m.pool.pool.Put(m.h)
	}
	m.pool, m.h = p, p.pool.Get().(hash.Hash)
}

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

// A rejection carries its WWW-Authenticate challenge (RFC 6750 §3, RFC
// 9449 §7.1) as a marker joined to it by fmt.Errorf("%w%w"): an error with
// empty text from errors.New, one per distinct challenge, found again with
// errors.Is. Every link of the chain is thus a standard-library value. An
// error type of the schemes would not do under the Yaegi interpreter (the
// Traefik plugin), which hands compiled code a wrapper of its own in place
// of an interpreted value, so a type assertion on the way back fails.
// Challenges come from the schemes' configuration, so the set stays small.
var challenges struct {
	mu   sync.Mutex
	list []challenge
}

// challenge is a marker and the challenge it stands for.
type challenge struct {
	marker error
	text   string
}

// WithChallenge returns err carrying the WWW-Authenticate challenge text.
func WithChallenge(err error, text string) error {
	challenges.mu.Lock()
	var m error
	for _, c := range challenges.list {
		if c.text == text {
			m = c.marker
			break
		}
	}
	if m == nil {
		m = errors.New("")
		challenges.list = append(challenges.list, challenge{marker: m, text: text})
	}
	challenges.mu.Unlock()
	return fmt.Errorf("%w%w", err, m)
}

// Challenge returns the challenge err carries, or "".
func Challenge(err error) string {
	if err == nil {
		return ""
	}
	challenges.mu.Lock()
	defer challenges.mu.Unlock()
	for _, c := range challenges.list {
		if errors.Is(err, c.marker) {
			return c.text
		}
	}
	return ""
}

// CheckPublicKey accepts the public key types and sizes the jwt scheme
// verifies with.
func CheckPublicKey(pub any) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N == nil || k.N.BitLen() < MinRSABits {
			return fmt.Errorf("signature: RSA key shorter than %d bits", MinRSABits)
		}
	case *ecdsa.PublicKey:
		if CurveName(k.Curve) == "" {
			return errors.New("signature: unsupported elliptic curve")
		}
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return errors.New("signature: Ed25519 key of the wrong size")
		}
	default:
		return fmt.Errorf("signature: unsupported public key type %T", pub)
	}
	return nil
}

// MinRSABits is the shortest RSA modulus accepted.
const MinRSABits = 2048

// CurveName returns the JOSE name of an ECDSA curve, or "".
func CurveName(c elliptic.Curve) string {
	switch c {
	case elliptic.P256():
		return "P-256"
	case elliptic.P384():
		return "P-384"
	case elliptic.P521():
		return "P-521"
	}
	return ""
}
