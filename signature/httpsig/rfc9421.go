package httpsig

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/internal/sigutil"

	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/signature/internal/sfv"
	"github.com/replayguard/replayguard/timestamp"
)

// Header names of RFC 9421.
const (
	SignatureInputHeader = "Signature-Input"
	SignatureHeader      = "Signature"
)

// DefaultRequiredComponents returns the components an rfc9421 signature
// must cover unless configured otherwise. "content-digest" is required only
// of a request with a body.
func DefaultRequiredComponents() []string {
	return []string{"@method", "@target-uri", "content-digest"}
}

// Bounds of what the rfc9421 scheme parses.
const (
	maxRFC9421Field = 8192
	maxRFC9421Nonce = 256
)

// Scheme is the rfc9421 scheme: HTTP Message Signatures (RFC 9421) in
// the Signature-Input and Signature fields.
//
// The signature verified is the first in Signature-Input (or the one
// WithSignatureLabel names) whose keyid is configured. It is verified with
// that key's configured algorithm only; an "alg" parameter naming another
// algorithm fails verification. "created" is the signed timestamp and is
// required; a passed "expires" is rejected. "nonce" is the replay key,
// else the signature value. A Content-Digest field, when present, must
// match the body (its sha-256 member, else its sha-512 one; see
// CheckContentDigest).
type Scheme struct {
	keys       map[string]*rfc9421Key
	required   []Component
	fieldTypes map[string]FieldType
	now        func() time.Time
	label      string
}

var _ signature.Scheme = (*Scheme)(nil)

type rfc9421Key struct {
	id      string
	alg     string
	secrets []*sigutil.MACPool
	pub     crypto.PublicKey
}

// Option configures an RFC9421 scheme.
type Option func(*Scheme) error

// WithRequiredComponents replaces DefaultRequiredComponents(). Each entry is
// a component name or a serialized component identifier (see
// ParseComponent); "content-digest" is required only of requests with a
// body. An empty list requires nothing.
func WithRequiredComponents(components []string) Option {
	return func(s *Scheme) error {
		s.required = s.required[:0]
		for i, c := range components {
			comp, err := ParseComponent(c)
			if err != nil {
				return fmt.Errorf("required component %d: %w", i, err)
			}
			if strings.HasPrefix(comp.Name, "@") {
				if _, err := parseFlags(comp); err != nil {
					return fmt.Errorf("required component %d: %w", i, err)
				}
				if !knownDerived(comp.Name) {
					return fmt.Errorf("required component %d: unknown derived component %q", i, comp.Name)
				}
			}
			s.required = append(s.required, comp)
		}
		return nil
	}
}

// WithFieldTypes names structured fields (lowercase name → type) that
// covered components may serialize with ";sf", besides DefaultFieldTypes().
func WithFieldTypes(types map[string]FieldType) Option {
	return func(s *Scheme) error {
		s.fieldTypes = make(map[string]FieldType, len(types))
		for k, v := range types {
			s.fieldTypes[strings.ToLower(k)] = v
		}
		return nil
	}
}

// WithClock sets the clock an "expires" parameter is checked
// against. Default time.Now.
func WithClock(now func() time.Time) Option {
	return func(s *Scheme) error { s.now = now; return nil }
}

// WithSignatureLabel verifies only the signature with this label.
func WithSignatureLabel(label string) Option {
	return func(s *Scheme) error {
		if !sfv.ValidKey(label) {
			return fmt.Errorf("invalid signature label %q", label)
		}
		s.label = label
		return nil
	}
}

func knownDerived(name string) bool {
	switch name {
	case "@method", "@target-uri", "@authority", "@scheme", "@request-target", "@path", "@query", "@query-param":
		return true
	}
	return false
}

// New returns the rfc9421 scheme over keys. A key with secrets and
// no public key is an hmac-sha256 key; a key with a PublicKey uses its
// Algorithm (RFC 9421 or JOSE name), which may be left empty for Ed25519
// and ECDSA keys.
func New(keys []signature.Key, opts ...Option) (*Scheme, error) {
	s := &Scheme{keys: make(map[string]*rfc9421Key, len(keys)), now: time.Now}
	for _, c := range DefaultRequiredComponents() {
		comp, _ := ParseComponent(c)
		s.required = append(s.required, comp)
	}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, fmt.Errorf("signature: rfc9421: %w", err)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("signature: rfc9421: no keys configured")
	}
	for i, k := range keys {
		if k.ID == "" {
			return nil, fmt.Errorf("signature: rfc9421: keys[%d]: empty id", i)
		}
		if _, dup := s.keys[k.ID]; dup {
			return nil, fmt.Errorf("signature: rfc9421: keys[%d]: duplicate id %q", i, k.ID)
		}
		alg, err := algorithmFor(k.Algorithm, k.PublicKey, len(k.Secrets) > 0)
		if err != nil {
			return nil, fmt.Errorf("signature: rfc9421: key %q: %w", k.ID, err)
		}
		if err := checkKeyFits(alg, k.PublicKey, len(k.Secrets)); err != nil {
			return nil, fmt.Errorf("signature: rfc9421: key %q: %w", k.ID, err)
		}
		rk := &rfc9421Key{id: k.ID, alg: alg}
		if alg == AlgHMACSHA256 {
			for j, sec := range k.Secrets {
				if len(sec) == 0 {
					return nil, fmt.Errorf("signature: rfc9421: key %q: secrets[%d] is empty", k.ID, j)
				}
				rk.secrets = append(rk.secrets, sigutil.NewMACPool(sec))
			}
		} else {
			rk.pub = k.PublicKey
		}
		s.keys[k.ID] = rk
	}
	return s, nil
}

var basePool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// chosenSignature is the signature a verification looks at.
type chosenSignature struct {
	label  string
	params sfv.InnerList
	key    *rfc9421Key
	sig    []byte
}

// Verify implements Scheme.
func (s *Scheme) Verify(_ context.Context, r *signature.Request) (signature.Verified, error) {
	ch, err := s.choose(r)
	if err != nil {
		return signature.Verified{}, err
	}
	ps := ch.params.Params
	created, err := unixParam(ps, "created", true)
	if err != nil {
		return signature.Verified{}, err
	}
	expires, err := unixParam(ps, "expires", false)
	if err != nil {
		return signature.Verified{}, err
	}
	if !expires.IsZero() {
		if expires.Before(created) {
			return signature.Verified{}, fmt.Errorf("%w: expires precedes created", timestamp.ErrMalformed)
		}
		if s.now().After(expires) {
			return signature.Verified{}, fmt.Errorf("%w: the signature's expires time has passed", timestamp.ErrExpired)
		}
	}
	if alg, ok := ps.Get("alg"); ok {
		if alg.Type != sfv.TypeString {
			return signature.Verified{}, fmt.Errorf("%w: alg is not a string", signature.ErrMalformed)
		}
		if alg.Str != ch.key.alg {
			return signature.Verified{}, fmt.Errorf("%w: alg %q is not the key's algorithm", signature.ErrInvalid, alg.Str)
		}
	}
	replayKey := ""
	if n, ok := ps.Get("nonce"); ok {
		if n.Type != sfv.TypeString || n.Str == "" || len(n.Str) > maxRFC9421Nonce {
			return signature.Verified{}, fmt.Errorf("%w: nonce must be a string of 1-%d characters", nonce.ErrMalformed, maxRFC9421Nonce)
		}
		replayKey = "n:" + n.Str
	}
	digestLines := r.Header[ContentDigestHeader]
	if err := s.checkCoverage(ch, r, digestLines); err != nil {
		return signature.Verified{}, err
	}

	bp := basePool.Get().(*[]byte)
	defer basePool.Put(bp)
	base, err := appendSignatureBase((*bp)[:0], MessageFromRequest(r), ch.params, s.fieldTypes)
	if base != nil {
		*bp = base
	}
	if err != nil {
		return signature.Verified{}, fmt.Errorf("%w: %w", signature.ErrInvalid, err)
	}
	if !ch.key.verify(base, ch.sig) {
		return signature.Verified{}, signature.ErrInvalid
	}
	if len(digestLines) > 0 {
		if err := CheckContentDigest(digestLines, r.Body); err != nil {
			return signature.Verified{}, err
		}
	}
	if replayKey == "" {
		sum := sha256.Sum256(canonicalSignature(ch.key.alg, ch.key.pub, ch.sig))
		replayKey = "s:" + base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return signature.Verified{KeyID: ch.key.id, Timestamp: created, ReplayKey: replayKey}, nil
}

// choose parses the signature fields and picks the signature to verify.
func (s *Scheme) choose(r *signature.Request) (chosenSignature, error) {
	inLines := r.Header[SignatureInputHeader]
	sigLines := r.Header[SignatureHeader]
	if len(inLines) == 0 {
		return chosenSignature{}, fmt.Errorf("%w: %s header", signature.ErrMissing, SignatureInputHeader)
	}
	if len(sigLines) == 0 {
		return chosenSignature{}, fmt.Errorf("%w: %s header", signature.ErrMissing, SignatureHeader)
	}
	inputs, err := parseSignatureField(inLines)
	if err != nil {
		return chosenSignature{}, fmt.Errorf("%w: %s: %w", signature.ErrMalformed, SignatureInputHeader, err)
	}
	sigs, err := parseSignatureField(sigLines)
	if err != nil {
		return chosenSignature{}, fmt.Errorf("%w: %s: %w", signature.ErrMalformed, SignatureHeader, err)
	}
	var ch chosenSignature
	sawKeyID := false
	for _, m := range inputs {
		if s.label != "" && m.Key != s.label {
			continue
		}
		if !m.Value.IsInnerList {
			return chosenSignature{}, fmt.Errorf("%w: %s member %q is not an inner list", signature.ErrMalformed, SignatureInputHeader, m.Key)
		}
		kid, ok := m.Value.Inner.Params.Get("keyid")
		if !ok {
			continue
		}
		if kid.Type != sfv.TypeString {
			return chosenSignature{}, fmt.Errorf("%w: keyid of %q is not a string", signature.ErrMalformed, m.Key)
		}
		sawKeyID = true
		if key, ok := s.keys[kid.Str]; ok {
			ch = chosenSignature{label: m.Key, params: m.Value.Inner, key: key}
			break
		}
	}
	if ch.key == nil {
		switch {
		case s.label != "" && !hasLabel(inputs, s.label):
			return chosenSignature{}, fmt.Errorf("%w: no signature labelled %q", signature.ErrMissing, s.label)
		case !sawKeyID:
			return chosenSignature{}, fmt.Errorf("%w: keyid parameter", signature.ErrMissing)
		}
		return chosenSignature{}, signature.ErrKeyUnknown
	}
	sm, ok := sigs.Get(ch.label)
	if !ok {
		return chosenSignature{}, fmt.Errorf("%w: %s has no member %q", signature.ErrMalformed, SignatureHeader, ch.label)
	}
	if sm.IsInnerList || sm.Item.Value.Type != sfv.TypeByteSequence {
		return chosenSignature{}, fmt.Errorf("%w: %s member %q is not a byte sequence", signature.ErrMalformed, SignatureHeader, ch.label)
	}
	ch.sig = sm.Item.Value.Bytes
	if len(ch.sig) == 0 || len(ch.sig) > maxRFC9421Signature {
		return chosenSignature{}, fmt.Errorf("%w: signature of %d bytes", signature.ErrMalformed, len(ch.sig))
	}
	return ch, nil
}

func hasLabel(d sfv.Dictionary, label string) bool {
	_, ok := d.Get(label)
	return ok
}

// parseSignatureField parses Signature-Input or Signature: a Dictionary
// whose labels are unique across all field lines.
func parseSignatureField(lines []string) (sfv.Dictionary, error) {
	n := 0
	for _, l := range lines {
		n += len(l) + 1
	}
	if n > maxRFC9421Field {
		return nil, fmt.Errorf("longer than %d bytes", maxRFC9421Field)
	}
	return sfv.ParseDictionaryUniqueKeys(strings.Join(lines, ","))
}

// unixParam reads an Integer signature parameter holding a unix time.
func unixParam(ps sfv.Params, name string, required bool) (time.Time, error) {
	v, ok := ps.Get(name)
	if !ok {
		if required {
			return time.Time{}, fmt.Errorf("%w: %s parameter", timestamp.ErrMissing, name)
		}
		return time.Time{}, nil
	}
	if v.Type != sfv.TypeInteger || v.Int < 0 {
		return time.Time{}, fmt.Errorf("%w: %s is not a unix time", timestamp.ErrMalformed, name)
	}
	return time.Unix(v.Int, 0), nil
}

// coversComponent reports whether covered meets req: the same identifier,
// or for a required name without parameters, any identifier of that name.
func coversComponent(covered []Component, req Component) bool {
	for _, c := range covered {
		if len(req.Params) == 0 && c.Name == req.Name || c.equal(req) {
			return true
		}
	}
	return false
}

func (k *rfc9421Key) verify(base, sig []byte) bool {
	if k.alg != AlgHMACSHA256 {
		return verifyAsymmetric(k.alg, k.pub, base, sig)
	}
	if len(sig) != sha256.Size {
		return false
	}
	var sum [sha256.Size]byte
	for _, p := range k.secrets {
		m := p.Get()
		m.Write(base)
		m.Sum(sum[:0])
		p.Put(m)
		if hmac.Equal(sum[:], sig) {
			return true
		}
	}
	return false
}

// checkCoverage holds the signature to the required components:
// content-digest only of a request with a body, which must then carry the
// header.
func (s *Scheme) checkCoverage(ch chosenSignature, r *signature.Request, digestLines []string) error {
	covered := make([]Component, 0, len(ch.params.Items))
	for _, it := range ch.params.Items {
		c, err := componentFromItem(it)
		if err != nil {
			return fmt.Errorf("%w: %w", signature.ErrMalformed, err)
		}
		covered = append(covered, c)
	}
	for _, req := range s.required {
		if req.Name == "content-digest" && len(req.Params) == 0 {
			if len(r.Body) == 0 {
				continue
			}
			if len(digestLines) == 0 {
				return fmt.Errorf("%w: %s header (the request has a body)", signature.ErrMissing, ContentDigestHeader)
			}
		}
		if !coversComponent(covered, req) {
			return fmt.Errorf("%w: the signature does not cover %s", signature.ErrMissing, req)
		}
	}
	return nil
}
