package jwtsig

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/golang-jwt/jwt/v5"
	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/internal/sigutil"
	"github.com/replayguard/replayguard/signature/jwks"
)

// call is the state of one verification.
type call struct {
	s      *Scheme
	kid    string
	keyErr error  // the key function's own rejection
	jkt    string // thumbprint of a DPoP proof's key
}

// credentials returns the token of the request and whether it is presented
// under the DPoP authentication scheme.
func (s *Scheme) credentials(h http.Header) (string, bool, error) {
	vals := h[s.header]
	if len(vals) == 0 || vals[0] == "" {
		return "", false, s.challenge(fmt.Errorf("%w: %s header", signature.ErrMissing, s.header), s.missing)
	}
	if len(vals) > 1 {
		return "", false, s.bearerErr(fmt.Errorf("%w: more than one %s header", signature.ErrMalformed, s.header))
	}
	v := vals[0]
	if s.prefix == "" {
		return v, false, nil
	}
	scheme, rest, _ := strings.Cut(v, " ")
	tok := strings.TrimLeft(rest, " ")
	dpop := false
	switch {
	case strings.EqualFold(scheme, s.prefix):
	case s.dpop && strings.EqualFold(scheme, DPoPPrefix):
		dpop = true
	default:
		return "", false, s.challenge(fmt.Errorf("%w: no %s credentials in %s", signature.ErrMissing, s.prefix, s.header), s.missing)
	}
	if tok == "" {
		return "", false, s.challenge(fmt.Errorf("%w: empty %s credentials", signature.ErrMissing, scheme), s.missing)
	}
	return tok, dpop, nil
}

func (s *Scheme) challenge(err error, ch string) error {
	if ch == "" {
		return err
	}
	return sigutil.WithChallenge(err, ch)
}

// bearerErr attaches the Bearer invalid_token challenge when the token
// travels in the Authorization header.
func (s *Scheme) bearerErr(err error) error {
	if s.prefix == "" || s.header != DefaultHeader {
		return err
	}
	return sigutil.WithChallenge(err, s.prefix+` error="invalid_token"`)
}

// checkCompact rejects, without allocating, what cannot be a compact JWS of
// at most max bytes: three base64url segments separated by dots.
func checkCompact(tok string, max int, what string) error {
	if len(tok) > max {
		return fmt.Errorf("%w: %s longer than %d bytes", signature.ErrMalformed, what, max)
	}
	dots := 0
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c == '.' {
			dots++
			continue
		}
		if !base64URLChar(c) {
			return fmt.Errorf("%w: %s is not base64url segments", signature.ErrMalformed, what)
		}
	}
	if dots != 2 {
		return fmt.Errorf("%w: %s does not have three segments", signature.ErrMalformed, what)
	}
	return nil
}

// base64URLChar reports whether c belongs to the base64url alphabet. (A
// tagless switch with several expressions per case is avoided here: Yaegi
// evaluates it wrongly.)
func base64URLChar(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'
}

// parseToken verifies a token's signature and registered claims.
func (c *call) parseToken(raw string, cl *tokenClaims) error {
	return c.parseTokenWith(raw, cl, c.tokenKey)
}

func (c *call) parseTokenWith(raw string, cl *tokenClaims, keyFunc jwt.Keyfunc) error {
	if err := checkCompact(raw, c.s.maxToken, "jwt"); err != nil {
		return err
	}
	m := jwt.MapClaims{}
	tok, err := c.s.parser.ParseWithClaims(raw, m, keyFunc)
	if err != nil {
		return c.classify(tok, err, "jwt")
	}
	if !tok.Valid {
		return fmt.Errorf("%w: jwt: token rejected", signature.ErrInvalid)
	}
	if err := c.s.checkRegistered(m); err != nil {
		return err
	}
	return readClaims(m, cl, "jwt")
}

// tokenKey is the key function of access tokens: it finds the key by kid
// and holds the token to that key's one algorithm.
func (c *call) tokenKey(t *jwt.Token) (any, error) {
	if err := checkCrit(t.Header); err != nil {
		c.keyErr = err
		return nil, err
	}
	if typ, _ := t.Header["typ"].(string); strings.EqualFold(typ, dpopType) {
		c.keyErr = fmt.Errorf("%w: jwt: a DPoP proof is not an access token", signature.ErrInvalid)
		return nil, c.keyErr
	}
	kidVal, ok := t.Header["kid"]
	if !ok {
		c.keyErr = fmt.Errorf("%w: jwt: kid header", signature.ErrMissing)
		return nil, c.keyErr
	}
	kid, ok := kidVal.(string)
	if !ok {
		c.keyErr = fmt.Errorf("%w: jwt: kid is not a string", signature.ErrMalformed)
		return nil, c.keyErr
	}
	if kid == "" {
		c.keyErr = fmt.Errorf("%w: jwt: kid header", signature.ErrMissing)
		return nil, c.keyErr
	}
	k, err := c.s.key(kid)
	if err != nil {
		c.keyErr = err
		return nil, err
	}
	if t.Method.Alg() != k.Algorithm {
		c.keyErr = fmt.Errorf("%w: jwt: key %q is used with %s only", signature.ErrInvalid, kid, k.Algorithm)
		return nil, c.keyErr
	}
	c.kid = c.s.entryID(kid)
	return k.Verify, nil
}

func (s *Scheme) key(kid string) (*jwks.Key, error) {
	if k := s.keys[kid]; k != nil {
		return k, nil
	}
	if s.jwks != nil {
		return s.jwks.Lookup(kid)
	}
	return nil, signature.ErrKeyUnknown
}

// entryID returns the identity of a token verified with the key named
// kid: the configured key's id, or the id of the key set's entry for a key
// fetched from the JWKS, never the token's own choice of kid.
func (s *Scheme) entryID(kid string) string {
	if s.keys[kid] != nil || s.jwks == nil {
		return kid
	}
	return s.jwks.ID()
}

// checkCrit rejects critical header extensions: the scheme understands
// none (RFC 7515 §4.1.11).
func checkCrit(h map[string]any) error {
	if _, ok := h["crit"]; ok {
		return fmt.Errorf("%w: jwt: unsupported critical header extensions", signature.ErrInvalid)
	}
	return nil
}

// classify maps a golang-jwt parse error to the package sentinels. Any
// error rejects the token; the mapping only picks the code
// (CVE-2024-51744).
func (c *call) classify(tok *jwt.Token, err error, what string) error {
	if c.keyErr != nil {
		return c.keyErr
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fmt.Errorf("%w: %s: a segment does not decode to JSON", signature.ErrMalformed, what)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		if tok != nil {
			if alg, _ := tok.Header["alg"].(string); alg != "" {
				return fmt.Errorf("%w: %s: algorithm not allowed", signature.ErrInvalid, what)
			}
		}
		return fmt.Errorf("%w: %s: alg header missing", signature.ErrMalformed, what)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if tok != nil && tok.Method != nil && !c.allowed(tok.Method.Alg(), what) {
			return fmt.Errorf("%w: %s: algorithm not allowed", signature.ErrInvalid, what)
		}
		return fmt.Errorf("%w: %s: signature does not verify", signature.ErrInvalid, what)
	}
	return fmt.Errorf("%w: %s: token rejected", signature.ErrInvalid, what)
}

func (c *call) allowed(alg, what string) bool {
	list := jwtAlgorithms
	if what != "jwt" {
		list = dpopAlgorithms
	}
	for _, a := range list {
		if a == alg {
			return true
		}
	}
	return false
}
