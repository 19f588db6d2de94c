package hmacsig

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/textproto"
	"strings"
	"sync"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/internal/sigutil"

	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/timestamp"
)

// Algorithm is the first line of the hmac scheme's string to sign.
const Algorithm = "RG1-HMAC-SHA256"

// Default header names of the hmac scheme.
const (
	DefaultKeyIDHeader     = "X-Key-Id"
	DefaultTimestampHeader = "X-Timestamp"
	DefaultNonceHeader     = "X-Nonce"
	DefaultSignatureHeader = "X-Signature"
)

// Nonce syntax of the hmac scheme.
const (
	MinNonceLen = 16
	MaxNonceLen = 128
)

// maxSignatureHeader bounds the X-Signature value; a rotation rarely needs
// more than a handful of v1= entries.
const maxSignatureHeader = 2048

// Headers names the headers of the hmac scheme.
type Headers struct {
	KeyID     string // default X-Key-Id
	Timestamp string // default X-Timestamp
	Nonce     string // default X-Nonce
	Signature string // default X-Signature
}

func (h Headers) withDefaults() Headers {
	if h.KeyID == "" {
		h.KeyID = DefaultKeyIDHeader
	}
	if h.Timestamp == "" {
		h.Timestamp = DefaultTimestampHeader
	}
	if h.Nonce == "" {
		h.Nonce = DefaultNonceHeader
	}
	if h.Signature == "" {
		h.Signature = DefaultSignatureHeader
	}
	h.KeyID = textproto.CanonicalMIMEHeaderKey(h.KeyID)
	h.Timestamp = textproto.CanonicalMIMEHeaderKey(h.Timestamp)
	h.Nonce = textproto.CanonicalMIMEHeaderKey(h.Nonce)
	h.Signature = textproto.CanonicalMIMEHeaderKey(h.Signature)
	return h
}

// Scheme is the hmac scheme: HMAC-SHA256 over the RG1 string to sign.
type Scheme struct {
	headers Headers
	keys    map[string]*hmacKey
}

var _ signature.Scheme = (*Scheme)(nil)

type hmacKey struct {
	id      string
	secrets []*sigutil.MACPool
}

// Option configures an HMAC scheme.
type Option func(*Scheme)

// WithHeaders overrides header names; empty fields keep their defaults.
func WithHeaders(h Headers) Option {
	return func(s *Scheme) { s.headers = h }
}

// New returns the hmac scheme over keys. Every key needs an id and at
// least one non-empty secret.
func New(keys []signature.Key, opts ...Option) (*Scheme, error) {
	s := &Scheme{keys: make(map[string]*hmacKey, len(keys))}
	for _, o := range opts {
		o(s)
	}
	s.headers = s.headers.withDefaults()
	if len(keys) == 0 {
		return nil, errors.New("signature: hmac: no keys configured")
	}
	for i, k := range keys {
		if k.ID == "" {
			return nil, fmt.Errorf("signature: hmac: keys[%d]: empty id", i)
		}
		if _, dup := s.keys[k.ID]; dup {
			return nil, fmt.Errorf("signature: hmac: keys[%d]: duplicate id %q", i, k.ID)
		}
		if len(k.Secrets) == 0 {
			return nil, fmt.Errorf("signature: hmac: key %q: no secrets", k.ID)
		}
		hk := &hmacKey{id: k.ID}
		for j, sec := range k.Secrets {
			if len(sec) == 0 {
				return nil, fmt.Errorf("signature: hmac: key %q: secrets[%d] is empty", k.ID, j)
			}
			hk.secrets = append(hk.secrets, sigutil.NewMACPool(sec))
		}
		s.keys[k.ID] = hk
	}
	return s, nil
}

// Headers returns the header names in use.
func (s *Scheme) Headers() Headers { return s.headers }

// maxEntries is the most v1= entries a signature header within
// maxSignatureHeader can hold ("v1=" plus 44 characters and a comma each),
// so every entry of an accepted header is tried.
const maxEntries = maxSignatureHeader/48 + 1

// scratch holds the per-request buffers of a verification.
type scratch struct {
	buf  []byte
	mac  [sha256.Size]byte
	sigs [maxEntries][sha256.Size]byte
}

var scratchPool = sync.Pool{New: func() any { return &scratch{buf: make([]byte, 0, 512)} }}

// Verify implements Scheme.
func (s *Scheme) Verify(_ context.Context, r *signature.Request) (signature.Verified, error) {
	h := r.Header
	keyID := sigutil.First(h[s.headers.KeyID])
	sigLines := h[s.headers.Signature]
	if keyID == "" {
		return signature.Verified{}, fmt.Errorf("%w: %s header", signature.ErrMissing, s.headers.KeyID)
	}
	if sigutil.First(sigLines) == "" && len(sigLines) <= 1 {
		return signature.Verified{}, fmt.Errorf("%w: %s header", signature.ErrMissing, s.headers.Signature)
	}
	key, ok := s.keys[keyID]
	if !ok {
		return signature.Verified{}, signature.ErrKeyUnknown
	}
	tsRaw := sigutil.First(h[s.headers.Timestamp])
	if tsRaw == "" {
		return signature.Verified{}, fmt.Errorf("%w: %s header", timestamp.ErrMissing, s.headers.Timestamp)
	}
	ts, err := timestamp.ParseUnix(tsRaw)
	if err != nil {
		return signature.Verified{}, err
	}
	nonceVal := sigutil.First(h[s.headers.Nonce])
	if nonceVal == "" {
		return signature.Verified{}, fmt.Errorf("%w: %s header", nonce.ErrMissing, s.headers.Nonce)
	}
	if !ValidNonce(nonceVal) {
		return signature.Verified{}, fmt.Errorf("%w: want %d-%d characters of [A-Za-z0-9._~-]", nonce.ErrMalformed, MinNonceLen, MaxNonceLen)
	}

	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	n, malformed, err := parseV1(sigLines, &sc.sigs)
	if err != nil {
		return signature.Verified{}, err
	}
	if n == 0 {
		if malformed {
			return signature.Verified{}, fmt.Errorf("%w: v1 value is not base64 of 32 bytes", signature.ErrMalformed)
		}
		return signature.Verified{}, fmt.Errorf("%w: no v1= entry in %s", signature.ErrMissing, s.headers.Signature)
	}
	sc.buf = AppendStringToSign(sc.buf[:0], r.Method, r.Host, r.Target, tsRaw, nonceVal, sigutil.First(h[signature.IdempotencyKeyHeader]), r.Body)
	for _, sec := range key.secrets {
		mac := sec.Get()
		mac.Write(sc.buf)
		mac.Sum(sc.mac[:0])
		sec.Put(mac)
		for i := 0; i < n; i++ {
			if hmac.Equal(sc.sigs[i][:], sc.mac[:]) {
				return signature.Verified{KeyID: keyID, Timestamp: ts, ReplayKey: nonceVal}, nil
			}
		}
	}
	if malformed {
		return signature.Verified{}, fmt.Errorf("%w: a v1 value is not base64 of 32 bytes", signature.ErrMalformed)
	}
	return signature.Verified{}, signature.ErrInvalid
}

// parseV1 decodes the v1= entries of the signature header lines into dst.
// Entries with another prefix are ignored. It returns how many decoded and
// whether any v1 entry could not be decoded; err is set only for a header
// beyond every sane size.
func parseV1(lines []string, dst *[maxEntries][sha256.Size]byte) (n int, malformed bool, err error) {
	total := 0
	for _, line := range lines {
		total += len(line)
		if total > maxSignatureHeader {
			return 0, false, fmt.Errorf("%w: signature header longer than %d bytes", signature.ErrMalformed, maxSignatureHeader)
		}
		for line != "" {
			var entry string
			if i := strings.IndexByte(line, ','); i >= 0 {
				entry, line = line[:i], line[i+1:]
			} else {
				entry, line = line, ""
			}
			entry = strings.Trim(entry, " \t")
			v, ok := strings.CutPrefix(entry, "v1=")
			if !ok {
				continue
			}
			if n == maxEntries {
				malformed = true
				continue
			}
			if !decodeSig(v, &(*dst)[n]) {
				malformed = true
				continue
			}
			n++
		}
	}
	return n, malformed, nil
}

// decodeSig decodes padded standard base64 of exactly 32 bytes (44
// characters, one '=') without allocating.
func decodeSig(s string, dst *[sha256.Size]byte) bool {
	if len(s) != 44 || s[43] != '=' || s[42] == '=' {
		return false
	}
	o := 0
	for i := 0; i < 40; i += 4 {
		a, b, c, d := b64val(s[i]), b64val(s[i+1]), b64val(s[i+2]), b64val(s[i+3])
		if a > 63 || b > 63 || c > 63 || d > 63 {
			return false
		}
		dst[o] = a<<2 | b>>4
		dst[o+1] = b<<4 | c>>2
		dst[o+2] = c<<6 | d
		o += 3
	}
	a, b, c := b64val(s[40]), b64val(s[41]), b64val(s[42])
	if a > 63 || b > 63 || c > 63 || c&0x3 != 0 {
		return false
	}
	dst[30] = a<<2 | b>>4
	dst[31] = b<<4 | c>>2
	return true
}

func b64val(c byte) byte {
	switch {
	case c >= 'A' && c <= 'Z':
		return c - 'A'
	case c >= 'a' && c <= 'z':
		return c - 'a' + 26
	case c >= '0' && c <= '9':
		return c - '0' + 52
	case c == '+':
		return 62
	case c == '/':
		return 63
	}
	return 0xff
}

// AppendStringToSign appends the RG1 string to sign to dst. The method is
// signed byte for byte as sent: a request signed as "POST" and sent as
// "post" does not verify, so a verified request runs the method its sender
// signed. Clients send methods in upper case.
func AppendStringToSign(dst []byte, method, host, target, ts, nonceVal, idempotencyKey string, body []byte) []byte {
	dst = append(dst, Algorithm...)
	dst = append(dst, '\n')
	dst = append(dst, method...)
	dst = append(dst, '\n')
	dst = appendLower(dst, host)
	dst = append(dst, '\n')
	dst = append(dst, target...)
	dst = append(dst, '\n')
	dst = append(dst, ts...)
	dst = append(dst, '\n')
	dst = append(dst, nonceVal...)
	dst = append(dst, '\n')
	dst = append(dst, idempotencyKey...)
	dst = append(dst, '\n')
	sum := sha256.Sum256(body)
	var hx [2 * sha256.Size]byte
	hex.Encode(hx[:], sum[:])
	return append(dst, hx[:]...)
}

// StringToSign returns the RG1 string to sign of a request.
func StringToSign(method, host, target, ts, nonceVal, idempotencyKey string, body []byte) string {
	return string(AppendStringToSign(nil, method, host, target, ts, nonceVal, idempotencyKey, body))
}

// ValidNonce reports whether n has the hmac scheme's nonce syntax:
// 16 to 128 characters of [A-Za-z0-9._~-].
func ValidNonce(n string) bool {
	if len(n) < MinNonceLen || len(n) > MaxNonceLen {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		// Conditions are joined with || rather than listed in one case:
		// the Yaegi interpreter evaluates only the first of a tagless
		// case's list.
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9':
		case c == '.' || c == '_' || c == '~' || c == '-':
		default:
			return false
		}
	}
	return true
}

func appendLower(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// Sign returns the X-Signature value ("v1=<base64>") of a string to sign.
func Sign(secret, stringToSign []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(stringToSign)
	return "v1=" + base64.StdEncoding.EncodeToString(m.Sum(nil))
}
