package hmacsig

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
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
	mac  sigutil.MAC
	sum  [sha256.Size]byte
	sigs [maxEntries][sha256.Size]byte
}

var scratchPool = sync.Pool{New: func() any { return &scratch{buf: make([]byte, 0, 512)} }}

// Verify implements Scheme.
//
// Its common path is short, and refusals are worded by functions of their
// own: the Traefik plugin runs this code in the Yaegi interpreter, which
// allocates every value a function body could hold on each call, whichever
// branch runs.
func (s *Scheme) Verify(_ context.Context, r *signature.Request) (signature.Verified, error) {
	h := r.Header
	// Header values read in place: a call to read each would cost more.
	var keyID, tsRaw, nonceVal string
	if v := h[s.headers.KeyID]; len(v) > 0 {
		keyID = v[0]
	}
	if v := h[s.headers.Timestamp]; len(v) > 0 {
		tsRaw = v[0]
	}
	if v := h[s.headers.Nonce]; len(v) > 0 {
		nonceVal = v[0]
	}
	sigLines := h[s.headers.Signature]
	key := s.keys[keyID]
	ts, err := timestamp.ParseUnix(tsRaw)
	if err != nil || key == nil || len(sigLines) == 0 || sigLines[0] == "" || !ValidNonce(nonceVal) {
		if err := headerError(s, h); err != nil {
			return signature.Verified{}, err
		}
	}
	sc := scratchPool.Get().(*scratch)
	ok, err := verifyMAC(key, sc, r, sigLines, tsRaw, nonceVal)
	scratchPool.Put(sc)
	if !ok {
		return signature.Verified{}, refusal(s, err)
	}
	return signature.Verified{KeyID: keyID, Timestamp: ts, ReplayKey: nonceVal}, nil
}

// headerError returns why the scheme's headers in h cannot be verified,
// checking them in order, or nil when they can.
func headerError(s *Scheme, h http.Header) error {
	keyID := sigutil.First(h[s.headers.KeyID])
	sigLines := h[s.headers.Signature]
	if keyID == "" {
		return fmt.Errorf("%w: %s header", signature.ErrMissing, s.headers.KeyID)
	}
	if sigutil.First(sigLines) == "" && len(sigLines) <= 1 {
		return fmt.Errorf("%w: %s header", signature.ErrMissing, s.headers.Signature)
	}
	if _, ok := s.keys[keyID]; !ok {
		return signature.ErrKeyUnknown
	}
	tsRaw := sigutil.First(h[s.headers.Timestamp])
	if tsRaw == "" {
		return fmt.Errorf("%w: %s header", timestamp.ErrMissing, s.headers.Timestamp)
	}
	if _, err := timestamp.ParseUnix(tsRaw); err != nil {
		return err
	}
	nonceVal := sigutil.First(h[s.headers.Nonce])
	if nonceVal == "" {
		return fmt.Errorf("%w: %s header", nonce.ErrMissing, s.headers.Nonce)
	}
	if !ValidNonce(nonceVal) {
		return fmt.Errorf("%w: want %d-%d characters of [A-Za-z0-9._~-]", nonce.ErrMalformed, MinNonceLen, MaxNonceLen)
	}
	return nil
}

// verifyMAC reports whether an entry of sigLines is the MAC of r's string
// to sign under one of key's secrets, with the buffers of sc. When none
// is, err says why (see refusal).
func verifyMAC(key *hmacKey, sc *scratch, r *signature.Request, sigLines []string, tsRaw, nonceVal string) (bool, error) {
	n, malformed, err := parseV1(sigLines, &sc.sigs)
	if err != nil {
		return false, err
	}
	if n > 0 {
		sc.buf = AppendStringToSign(sc.buf[:0], r.Method, r.Host, r.Target, tsRaw, nonceVal, sigutil.First(r.Header[signature.IdempotencyKeyHeader]), r.Body)
		for _, sec := range key.secrets {
			mac := sigutil.AppendMAC(&sc.mac, sec, sc.sum[:0], sc.buf)
			for i := 0; i < n; i++ {
				if hmac.Equal(sc.sigs[i][:], mac) {
					return true, nil
				}
			}
		}
	}
	return false, failure(n, malformed)
}

// What verifyMAC found when no entry verified, worded by refusal.
var (
	errNoEntry      = errors.New("hmacsig: no v1 entry")
	errNoDecodable  = errors.New("hmacsig: no decodable v1 entry")
	errUndecodable  = errors.New("hmacsig: an undecodable v1 entry")
	errNoneVerified = signature.ErrInvalid
)

// failure returns what verifyMAC found: n entries decoded, none
// verifying, and some not decodable when malformed.
func failure(n int, malformed bool) error {
	switch {
	case n == 0 && malformed:
		return errNoDecodable
	case n == 0:
		return errNoEntry
	case malformed:
		return errUndecodable
	}
	return errNoneVerified
}

// refusal returns the error Verify answers verifyMAC's err with.
func refusal(s *Scheme, err error) error {
	switch {
	case errors.Is(err, errNoDecodable):
		return fmt.Errorf("%w: v1 value is not base64 of 32 bytes", signature.ErrMalformed)
	case errors.Is(err, errUndecodable):
		return fmt.Errorf("%w: a v1 value is not base64 of 32 bytes", signature.ErrMalformed)
	case errors.Is(err, errNoEntry):
		return fmt.Errorf("%w: no v1= entry in %s", signature.ErrMissing, s.headers.Signature)
	}
	return err
}

// parseV1 decodes the v1= entries of the signature header lines into dst.
// Entries with another prefix are ignored. It returns how many decoded and
// whether any v1 entry could not be decoded; err is set only for a header
// beyond every sane size.
func parseV1(lines []string, dst *[maxEntries][sha256.Size]byte) (n int, malformed bool, err error) {
	// The common header, one line holding one entry, decodes at once.
	if len(lines) == 1 && len(lines[0]) == len("v1=")+44 && lines[0][:3] == "v1=" && decodeSig(lines[0][3:], &(*dst)[0]) {
		return 1, false, nil
	}
	return parseEntries(lines, dst)
}

// parseEntries is parseV1 on any header.
func parseEntries(lines []string, dst *[maxEntries][sha256.Size]byte) (n int, malformed bool, err error) {
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

// strictBase64 is padded standard base64 refusing non-zero unused bits, so
// that one signature has one spelling.
var strictBase64 = base64.StdEncoding.Strict()

// decodeSig decodes padded standard base64 of exactly 32 bytes (44
// characters, one '=') into dst. The standard library does the decoding:
// under the Yaegi interpreter (the Traefik plugin) a loop over the
// characters would cost a microsecond each.
func decodeSig(s string, dst *[sha256.Size]byte) bool {
	if len(s) != 44 || s[43] != '=' || s[42] == '=' {
		return false
	}
	// Decode skips CR and LF; with any among the 44 characters fewer than
	// 32 bytes come out.
	n, err := strictBase64.Decode(dst[:], []byte(s))
	return err == nil && n == sha256.Size
}

// AppendStringToSign appends the RG1 string to sign to dst. The method is
// signed byte for byte as sent: a request signed as "POST" and sent as
// "post" does not verify, so a verified request runs the method its sender
// signed. Clients send methods in upper case.
func AppendStringToSign(dst []byte, method, host, target, ts, nonceVal, idempotencyKey string, body []byte) []byte {
	dst = append(dst, Algorithm+"\n"...)
	dst = append(dst, method...)
	dst = append(dst, '\n')
	dst = append(dst, lowerASCII.Replace(host)...)
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
	return hex.AppendEncode(dst, sum[:])
}

// StringToSign returns the RG1 string to sign of a request.
func StringToSign(method, host, target, ts, nonceVal, idempotencyKey string, body []byte) string {
	return string(AppendStringToSign(nil, method, host, target, ts, nonceVal, idempotencyKey, body))
}

// nonceChars are the characters of an hmac nonce.
const nonceChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-"

// ValidNonce reports whether n has the hmac scheme's nonce syntax:
// 16 to 128 characters of [A-Za-z0-9._~-].
func ValidNonce(n string) bool {
	// Trimming every allowed character leaves nothing of a valid nonce;
	// the standard library scans it.
	return len(n) >= MinNonceLen && len(n) <= MaxNonceLen && strings.Trim(n, nonceChars) == ""
}

// lowerASCII maps A-Z to a-z and leaves every other byte as it is.
var lowerASCII = strings.NewReplacer(
	"A", "a", "B", "b", "C", "c", "D", "d", "E", "e", "F", "f", "G", "g", "H", "h", "I", "i",
	"J", "j", "K", "k", "L", "l", "M", "m", "N", "n", "O", "o", "P", "p", "Q", "q", "R", "r",
	"S", "s", "T", "t", "U", "u", "V", "v", "W", "w", "X", "x", "Y", "y", "Z", "z")

// Sign returns the X-Signature value ("v1=<base64>") of a string to sign.
func Sign(secret, stringToSign []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(stringToSign)
	return "v1=" + base64.StdEncoding.EncodeToString(m.Sum(nil))
}
