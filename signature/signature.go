package signature

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/replayguard/replayguard/signature/internal/sigutil"
)

// Sentinel errors. Schemes wrap them with %w.
var (
	// ErrMissing reports that a required signature header or claim is absent.
	ErrMissing = errors.New("signature: missing")
	// ErrMalformed reports a signature that is present but cannot be parsed.
	ErrMalformed = errors.New("signature: malformed")
	// ErrKeyUnknown reports a key id that is not configured.
	ErrKeyUnknown = errors.New("signature: key unknown")
	// ErrInvalid reports a signature that does not verify with any secret
	// of its key.
	ErrInvalid = errors.New("signature: invalid")
	// ErrMethodInvalid reports a request method that is not an HTTP token:
	// no string to sign may hold it.
	ErrMethodInvalid = errors.New("signature: method invalid")
	// ErrMethodNotAllowed reports a request method that a scheme refuses
	// before any signature work: the webhook presets sign no method, so
	// they accept POST, the one method providers send, and nothing else.
	// AllowedMethods returns what such a scheme accepts.
	ErrMethodNotAllowed = errors.New("signature: method not allowed")
)

// errPOSTOnly marks an ErrMethodNotAllowed refusal of a scheme that accepts
// POST alone. The chain holds standard-library values only (fmt.Errorf with
// %w, errors.New): an error type of this package would not survive the Yaegi
// interpreter, which hands compiled code a wrapper of its own in place of an
// interpreted value, so errors.As on the way back fails.
var errPOSTOnly = errors.New("")

// POSTOnly returns the refusal of a request whose method is not POST under
// a scheme that signs no method (ErrMethodNotAllowed; AllowedMethods
// returns POST).
func POSTOnly(scheme string) error {
	return fmt.Errorf("%w: %s signs no method and accepts POST only%w", ErrMethodNotAllowed, scheme, errPOSTOnly)
}

// AllowedMethods returns the methods the scheme that returned err accepts,
// for the Allow header of a 405 answer, when err is an ErrMethodNotAllowed
// refusal; nil otherwise.
func AllowedMethods(err error) []string {
	if errors.Is(err, errPOSTOnly) {
		return []string{http.MethodPost}
	}
	return nil
}

// IdempotencyKeyHeader carries the key of an operation (the IETF
// Idempotency-Key draft); schemes that sign it read it from here.
const IdempotencyKeyHeader = "Idempotency-Key"

// Request is what a scheme verifies: the parts of an HTTP request (or of a
// message outside HTTP) that signatures cover.
type Request struct {
	// Method is the request method, e.g. "POST".
	Method string
	// Scheme is "http" or "https".
	Scheme string
	// Host is the Host header (the :authority) as received.
	Host string
	// Target is the request-target exactly as sent: path and raw query.
	Target string
	// Header holds the request headers.
	Header http.Header
	// Body is the complete request body.
	Body []byte
}

// FromHTTP builds a Request from a received server request and its body.
// It is small enough to be inlined, so that a caller keeping the Request
// by value (*FromHTTP(r, body)) allocates none.
func FromHTTP(r *http.Request, body []byte) *Request {
	sr := &Request{}
	fromHTTP(sr, r, body)
	return sr
}

// fromHTTP is a function rather than a method: under the Yaegi
// interpreter (the Traefik plugin) a method call builds a reflect.MakeFunc
// wrapper each time.
func fromHTTP(sr *Request, r *http.Request, body []byte) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	target := OriginForm(r.RequestURI)
	if target == "" {
		target = r.URL.RequestURI()
	}
	*sr = Request{Method: r.Method, Scheme: scheme, Host: r.Host, Target: target, Header: r.Header, Body: body}
}

// Check refuses a request that no string to sign may stand for: a method
// that is not an HTTP token, or a control byte (CR, LF, NUL, …) in the
// host, the request-target or a header. A server built on net/http never
// hands such a request over; one built by hand may, and a CR/LF in a
// signed line would let one signature verify another request.
func (r *Request) Check() error {
	if !IsToken(r.Method) {
		return fmt.Errorf("%w: %q is not a method", ErrMethodInvalid, r.Method)
	}
	if HasControl(r.Host) || strings.ContainsAny(r.Host, " \t") {
		return fmt.Errorf("%w: the host contains a control byte or a space", ErrMalformed)
	}
	if HasControl(r.Target) || strings.ContainsAny(r.Target, " \t") {
		return fmt.Errorf("%w: the request-target contains a control byte or a space", ErrMalformed)
	}
	for name, vs := range r.Header {
		if !IsToken(name) {
			return fmt.Errorf("%w: a header name is not a token", ErrMalformed)
		}
		for _, v := range vs {
			for i := 0; i < len(v); i++ {
				if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
					return fmt.Errorf("%w: header %s contains a control byte", ErrMalformed, name)
				}
			}
		}
	}
	return nil
}

// OriginForm returns the path and raw query of a request-target as sent:
// an origin-form target ("/p?q") is returned unchanged, an absolute-form one
// ("http://host/p?q", as sent to proxies) loses its scheme and authority.
func OriginForm(target string) string {
	if target == "" || target[0] == '/' || target == "*" {
		return target
	}
	i := strings.Index(target, "://")
	if i < 0 {
		return target
	}
	rest := target[i+3:]
	j := strings.IndexAny(rest, "/?")
	if j < 0 {
		return "/"
	}
	if rest[j] == '?' {
		return "/" + rest[j:]
	}
	return rest[j:]
}

// Verified is what a scheme establishes about a request whose signature verified.
type Verified struct {
	// KeyID is the identity: the id of the configured key entry whose key
	// verified the signature (for keys fetched from a JWKS, the id of that
	// key set's entry). A signer never chooses it.
	KeyID string
	// Subject is a subject within that key (a JWT's sub), chosen by
	// whoever holds the key; empty when the scheme carries none.
	Subject string
	// Timestamp is the signed timestamp; zero when the scheme signs none.
	Timestamp time.Time
	// ReplayKey is the value recorded by the nonce store; empty when the
	// scheme has none (dedupe-only webhook presets).
	ReplayKey string
	// IdempotencyKey is a delivery id the scheme derives (webhook presets);
	// empty otherwise.
	IdempotencyKey string
	// IdempotencyOptional reports that the scheme carries no idempotency
	// key by design (e.g. a webhook provider without delivery ids): a
	// covered request without one passes without a record even when keys
	// are required. A client-sent Idempotency-Key is still honoured.
	IdempotencyOptional bool
}

// Scope returns what replay keys and idempotency records are scoped by:
// the key id, followed by a zero byte and the subject when there is one.
// A subject never contains control bytes, so no two (key id, subject)
// pairs share a scope.
func (v Verified) Scope() string {
	if v.Subject == "" {
		return v.KeyID
	}
	return v.KeyID + "\x00" + v.Subject
}

// MaxSubjectBytes bounds a subject (a JWT's sub).
const MaxSubjectBytes = 255

// HasControl reports whether s contains a control byte (below 0x20, or
// DEL): such bytes would let one string to sign, log line or header stand
// for another.
func HasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

// Scheme verifies the signature of a request.
type Scheme interface {
	// Verify checks r's signature. Errors wrap ErrMissing, ErrMalformed,
	// ErrKeyUnknown, ErrInvalid, or the timestamp and nonce sentinels for
	// the signed parameters.
	Verify(ctx context.Context, r *Request) (Verified, error)
}

// Key is one configured key.
type Key struct {
	// ID names the key on the wire.
	ID string
	// Secrets are the shared secrets of a symmetric key; several during a
	// rotation, each tried.
	Secrets [][]byte
	// Algorithm is the one algorithm an asymmetric key is used with.
	Algorithm string
	// PublicKey is the verification key of an asymmetric key.
	PublicKey any
}

// ParseSecret decodes a configured secret: "base64:<std base64>" is decoded,
// any other string is used as its UTF-8 bytes.
func ParseSecret(s string) ([]byte, error) {
	if rest, ok := strings.CutPrefix(s, "base64:"); ok {
		b, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return nil, fmt.Errorf("signature: secret: invalid base64: %w", err)
		}
		if len(b) == 0 {
			return nil, errors.New("signature: secret: empty")
		}
		return b, nil
	}
	if s == "" {
		return nil, errors.New("signature: secret: empty")
	}
	return []byte(s), nil
}

// IsToken reports whether s is an HTTP token (RFC 9110 §5.6.2): the syntax
// of a method, a header name or an authentication scheme.
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') {
			continue
		}
		if strings.IndexByte("!#$%&'*+-.^_`|~", c) < 0 {
			return false
		}
	}
	return true
}

// WWWAuthenticate returns the WWW-Authenticate challenge a rejection
// carries (the jwt scheme's Bearer and DPoP challenges), or "".
func WWWAuthenticate(err error) string { return sigutil.Challenge(err) }
