package idempotency

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"net/http"
	"strings"
	"sync"
)

// HeaderName is the request header naming the operation.
const HeaderName = "Idempotency-Key"

// ReplayedHeader marks a response served from the store.
const ReplayedHeader = "Idempotent-Replayed"

// MaxKeyLen is the longest key accepted, counted on the decoded value.
const MaxKeyLen = 255

// ParseKey returns the key named by the Idempotency-Key field values: an
// RFC 8941 sf-string ("…", with \" and \\ escapes) or a bare token, both
// naming the same key, of 1–255 printable ASCII characters (0x20–0x7E). No
// value returns "" and ErrKeyMissing; several values are malformed.
func ParseKey(values []string) (string, error) {
	if len(values) == 0 {
		return "", ErrKeyMissing
	}
	if len(values) > 1 {
		return "", fmt.Errorf("%w: more than one %s field", ErrKeyMalformed, HeaderName)
	}
	v := strings.Trim(values[0], " \t")
	if v == "" {
		return "", fmt.Errorf("%w: empty", ErrKeyMalformed)
	}
	if v[0] != '"' {
		if len(v) > MaxKeyLen {
			return "", fmt.Errorf("%w: longer than %d characters", ErrKeyMalformed, MaxKeyLen)
		}
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] > 0x7e {
				return "", fmt.Errorf("%w: not printable ASCII", ErrKeyMalformed)
			}
		}
		return v, nil
	}
	// sf-string
	var b strings.Builder
	for i := 1; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\':
			i++
			if i >= len(v) || (v[i] != '"' && v[i] != '\\') {
				return "", fmt.Errorf("%w: bad escape in sf-string", ErrKeyMalformed)
			}
			b.WriteByte(v[i])
		case c == '"':
			if i != len(v)-1 {
				return "", fmt.Errorf("%w: characters after the closing quote", ErrKeyMalformed)
			}
			if b.Len() == 0 {
				return "", fmt.Errorf("%w: empty", ErrKeyMalformed)
			}
			if b.Len() > MaxKeyLen {
				return "", fmt.Errorf("%w: longer than %d characters", ErrKeyMalformed, MaxKeyLen)
			}
			return b.String(), nil
		case c < 0x20 || c > 0x7e:
			return "", fmt.Errorf("%w: not printable ASCII", ErrKeyMalformed)
		default:
			b.WriteByte(c)
		}
	}
	return "", fmt.Errorf("%w: unterminated sf-string", ErrKeyMalformed)
}

// ScopedKey joins principal and key so that one client can never reach
// another's records.
func ScopedKey(principal, key string) string {
	return principal + "\x00" + key
}

// RequestFingerprint is SHA-256 over the method, the request-target, the
// named headers (in the order given, each with all its values) and the
// body, each part length-prefixed so no two requests share an encoding.
func RequestFingerprint(method, target string, h http.Header, headers []string, body []byte) Fingerprint {
	// No closure, no defer, and a body that fits the scratch is hashed
	// with it in one call: under the Yaegi interpreter (the Traefik
	// plugin) each call costs about as much as the hashing.
	fs := fingerprints.Get().(*fingerprinter)
	b := binary.BigEndian.AppendUint64(fs.buf[:0], uint64(len(method)))
	b = append(b, method...)
	b = binary.BigEndian.AppendUint64(b, uint64(len(target)))
	b = append(b, target...)
	if len(headers) > 0 {
		b = appendHeaderParts(b, h, headers)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(len(body)))
	var fp Fingerprint
	if len(b)+len(body) <= maxFingerprintScratch {
		b = append(b, body...)
		fp = sha256.Sum256(b)
	} else {
		fp = fingerprintStream(fs, b, body)
	}
	if cap(b) <= maxFingerprintScratch {
		fs.buf = b
	}
	fingerprints.Put(fs)
	return fp
}

// fingerprintStream hashes b then body with the digest of fs.
func fingerprintStream(fs *fingerprinter, b, body []byte) Fingerprint {
	fs.d.Reset()
	fs.d.Write(b)
	fs.d.Write(body)
	var fp Fingerprint
	fs.d.Sum(fp[:0])
	return fp
}

// appendPart appends s to b, length-prefixed.
func appendPart(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

// appendHeaderParts appends the named headers of h to b, each name
// lower-cased, then its number of values and each value.
func appendHeaderParts(b []byte, h http.Header, headers []string) []byte {
	for _, name := range headers {
		b = appendPart(b, strings.ToLower(name))
		vs := h.Values(name)
		b = binary.BigEndian.AppendUint64(b, uint64(len(vs)))
		for _, v := range vs {
			b = appendPart(b, v)
		}
	}
	return b
}

// fingerprinter is the state RequestFingerprint reuses: a SHA-256 digest
// and the buffer the parts before the body are encoded in.
type fingerprinter struct {
	d   hash.Hash
	buf []byte
}

// maxFingerprintScratch is the buffer a fingerprinter keeps: the parts
// before the body and, when they fit in it with them, the body.
const maxFingerprintScratch = 4 << 10

var fingerprints = sync.Pool{New: func() any { return &fingerprinter{d: sha256.New(), buf: make([]byte, 0, maxFingerprintScratch)} }}
