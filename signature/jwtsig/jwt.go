package jwtsig

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/internal/sigutil"
	"github.com/replayguard/replayguard/signature/jwks"

	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/timestamp"
)

// Request-binding claims of the jwt scheme (SPEC §3.2).
const (
	// ClaimHTM binds the request method.
	ClaimHTM = "htm"
	// ClaimHTU binds scheme://host/path, without the query.
	ClaimHTU = "htu"
	// ClaimBSH binds the body: base64url(SHA-256(body)) without padding.
	ClaimBSH = "bsh"
)

// Defaults of the jwt scheme.
const (
	DefaultHeader = "Authorization"
	DefaultPrefix = "Bearer"
	// DefaultLeeway is the clock skew allowed on exp and nbf.
	DefaultLeeway = 30 * time.Second
	// DefaultMaxTokenBytes bounds a token (and a DPoP proof); larger ones
	// are rejected before any decoding.
	DefaultMaxTokenBytes = 8 << 10
	// MaxJTIBytes bounds a jti; a longer one is nonce_malformed, so that
	// replay records stay small (RFC 9449 §11.1).
	MaxJTIBytes = 256
)

// DefaultBind is the request binding in force when none is configured.
func DefaultBind() []string { return []string{ClaimHTM, ClaimHTU, ClaimBSH} }

// jwtAlgorithms are the algorithms the jwt scheme verifies; never "none".
var jwtAlgorithms = []string{
	"HS256", "HS384", "HS512",
	"RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512",
	"EdDSA",
}

// dpopAlgorithms are the asymmetric algorithms a DPoP proof may use.
var dpopAlgorithms = []string{
	"ES256", "ES384", "ES512", "EdDSA",
	"PS256", "PS384", "PS512",
	"RS256", "RS384", "RS512",
}

// Algorithms returns the algorithms the jwt scheme supports.
func Algorithms() []string { return append([]string(nil), jwtAlgorithms...) }

type binding uint8

const (
	bindHTM binding = 1 << iota
	bindHTU
	bindBSH
)

func parseBind(claims []string) (binding, error) {
	var b binding
	for i, c := range claims {
		var f binding
		switch c {
		case ClaimHTM:
			f = bindHTM
		case ClaimHTU:
			f = bindHTU
		case ClaimBSH:
			f = bindBSH
		default:
			return 0, fmt.Errorf("signature: jwt: bind[%d]: %q is not one of %s, %s, %s", i, c, ClaimHTM, ClaimHTU, ClaimBSH)
		}
		if b&f != 0 {
			return 0, fmt.Errorf("signature: jwt: bind[%d]: %q listed twice", i, c)
		}
		b |= f
	}
	return b, nil
}

// Scheme is the jwt scheme: a JWT in a request header (default
// "Authorization: Bearer <jwt>"), signed with the one algorithm of its key
// (looked up by kid in the configured keys, then in a JWKS), bound to the
// request by its htm, htu and bsh claims. Its jti is the replay key and its
// iat the signed timestamp; exp and nbf are checked with a leeway, and iss,
// aud and sub when configured. With DPoP on, "Authorization: DPoP <token>"
// plus a DPoP proof header (RFC 9449) is accepted as well: the token must be
// bound to the proof's key (cnf.jkt), and the proof's jti and iat are the
// replay key and timestamp.
//
// Verify checks exp and nbf against its clock but leaves the window on iat
// to the caller (Guard.Verify), as every scheme does.
type Scheme struct {
	header   string
	prefix   string
	keys     map[string]*jwks.Key
	jwks     *jwks.Set
	issuer   string
	audience string
	subject  string
	leeway   time.Duration
	bindList []string
	bind     binding
	dpop     bool
	now      func() time.Time
	maxToken int

	parser      *jwt.Parser
	proofParser *jwt.Parser
	missing     string // challenge when no credentials are sent
	dpopAlgs    string
}

var _ signature.Scheme = (*Scheme)(nil)

// Option configures a JWT scheme.
type Option func(*Scheme)

// WithHeader sets the header carrying the token and the authentication
// scheme before it. An empty prefix takes the whole header value as the
// token. Default "Authorization" and "Bearer".
func WithHeader(header, prefix string) Option {
	return func(s *Scheme) { s.header, s.prefix = header, prefix }
}

// WithIssuer requires the iss claim to equal iss.
func WithIssuer(iss string) Option { return func(s *Scheme) { s.issuer = iss } }

// WithAudience requires the aud claim to contain aud.
func WithAudience(aud string) Option { return func(s *Scheme) { s.audience = aud } }

// WithSubject requires the sub claim to equal sub.
func WithSubject(sub string) Option { return func(s *Scheme) { s.subject = sub } }

// WithLeeway sets the clock skew allowed on exp and nbf. Default
// DefaultLeeway; negative values count as zero.
func WithLeeway(d time.Duration) Option { return func(s *Scheme) { s.leeway = d } }

// WithBind sets the binding claims a token must carry, among ClaimHTM,
// ClaimHTU and ClaimBSH. No claims turns the requirement off; a binding
// claim a token carries anyway is still checked. Default DefaultJWTBind.
func WithBind(claims ...string) Option {
	return func(s *Scheme) { s.bindList = append([]string{}, claims...) }
}

// WithClock sets the clock exp and nbf are checked against. Default
// time.Now.
func WithClock(now func() time.Time) Option { return func(s *Scheme) { s.now = now } }

// WithMaxTokenBytes bounds the size of a token and of a DPoP proof.
// Default DefaultJWTMaxTokenBytes.
func WithMaxTokenBytes(n int) Option { return func(s *Scheme) { s.maxToken = n } }

// WithJWKS adds a key set fetched from a URL; configured keys win over a
// key of the same id in the set.
func WithJWKS(j *jwks.Set) Option { return func(s *Scheme) { s.jwks = j } }

// WithDPoP accepts DPoP-bound tokens with DPoP proofs (RFC 9449) besides
// bearer tokens; it needs a header prefix. Default off.
func WithDPoP(on bool) Option { return func(s *Scheme) { s.dpop = on } }

// New returns the jwt scheme over keys. A key with secrets is an HMAC key
// (algorithm HS256 unless set; each secret at least as long as the hash);
// a key with a PublicKey is used with its Algorithm, which an ECDSA or
// Ed25519 key implies when unset. Keys may be empty when a JWKS is given.
func New(keys []signature.Key, opts ...Option) (*Scheme, error) {
	s := &Scheme{
		header: DefaultHeader, prefix: DefaultPrefix, leeway: DefaultLeeway,
		now: time.Now, maxToken: DefaultMaxTokenBytes, keys: make(map[string]*jwks.Key, len(keys)),
	}
	for _, o := range opts {
		o(s)
	}
	if s.header == "" {
		return nil, errors.New("signature: jwt: empty header name")
	}
	s.header = textproto.CanonicalMIMEHeaderKey(s.header)
	if strings.ContainsAny(s.prefix, " \t") {
		return nil, fmt.Errorf("signature: jwt: prefix %q contains a space", s.prefix)
	}
	if s.dpop && s.prefix == "" {
		return nil, errors.New("signature: jwt: DPoP needs a prefix: the token is told apart by its authentication scheme")
	}
	if s.leeway < 0 {
		s.leeway = 0
	}
	if s.maxToken <= 0 {
		s.maxToken = DefaultMaxTokenBytes
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.bindList == nil {
		s.bindList = DefaultBind()
	}
	var err error
	if s.bind, err = parseBind(s.bindList); err != nil {
		return nil, err
	}
	if len(keys) == 0 && s.jwks == nil {
		return nil, errors.New("signature: jwt: no keys and no JWKS configured")
	}
	for i, k := range keys {
		jk, err := newJWTKey(k)
		if err != nil {
			return nil, fmt.Errorf("signature: jwt: keys[%d]: %w", i, err)
		}
		if _, dup := s.keys[k.ID]; dup {
			return nil, fmt.Errorf("signature: jwt: keys[%d]: duplicate id %q", i, k.ID)
		}
		s.keys[k.ID] = jk
	}
	// The registered claims are checked by checkRegistered, not by the
	// parser: golang-jwt joins claim errors in a type of its own, whose
	// Unwrap Yaegi hides, so its errors could not be told apart there.
	s.parser = jwt.NewParser(jwt.WithValidMethods(jwtAlgorithms), jwt.WithoutClaimsValidation(), jwt.WithStrictDecoding())
	s.proofParser = jwt.NewParser(jwt.WithValidMethods(dpopAlgorithms), jwt.WithoutClaimsValidation(), jwt.WithStrictDecoding())
	s.dpopAlgs = `algs="` + strings.Join(dpopAlgorithms, " ") + `"`
	if s.prefix != "" && s.header == DefaultHeader {
		s.missing = s.prefix
	}
	if s.dpop {
		if s.missing != "" {
			s.missing += ", "
		}
		s.missing += DPoPPrefix + " " + s.dpopAlgs
	}
	return s, nil
}

// newJWTKey checks a configured key and fixes its algorithm.
func newJWTKey(k signature.Key) (*jwks.Key, error) {
	if k.ID == "" {
		return nil, errors.New("empty id")
	}
	if len(k.Secrets) > 0 && k.PublicKey != nil {
		return nil, fmt.Errorf("key %q has both secrets and a public key", k.ID)
	}
	if len(k.Secrets) == 0 {
		if k.PublicKey == nil {
			return nil, fmt.Errorf("key %q has neither secrets nor a public key", k.ID)
		}
		if err := sigutil.CheckPublicKey(k.PublicKey); err != nil {
			return nil, fmt.Errorf("key %q: %w", k.ID, err)
		}
		alg, err := signature.KeyAlgorithm(k.PublicKey, k.Algorithm)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k.ID, err)
		}
		return &jwks.Key{ID: k.ID, Algorithm: alg, Verify: k.PublicKey}, nil
	}
	alg := k.Algorithm
	if alg == "" {
		alg = "HS256"
	}
	for i, sec := range k.Secrets {
		if _, err := signature.KeyAlgorithm(sec, alg); err != nil {
			return nil, fmt.Errorf("key %q: secrets[%d]: %w", k.ID, i, err)
		}
	}
	if len(k.Secrets) == 1 {
		return &jwks.Key{ID: k.ID, Algorithm: alg, Verify: append([]byte(nil), k.Secrets[0]...)}, nil
	}
	set := jwt.VerificationKeySet{}
	for _, sec := range k.Secrets {
		set.Keys = append(set.Keys, append([]byte(nil), sec...))
	}
	return &jwks.Key{ID: k.ID, Algorithm: alg, Verify: set}, nil
}

// tokenClaims are the claims the jwt scheme reads, of a token or of a DPoP
// proof. They are decoded as jwt.MapClaims, which Yaegi handles (a struct
// behind the jwt.Claims interface is not filled by encoding/json there),
// and read into this struct once the signature verified.
type tokenClaims struct {
	ID       string
	IssuedAt *jwt.NumericDate
	Subject  string
	HTM      string
	HTU      string
	BSH      string
	ATH      string
	JKT      string
	cnf      bool
}

// readClaims reads the claims of a verified token; a claim of the wrong
// JSON type is malformed.
func readClaims(m jwt.MapClaims, cl *tokenClaims, what string) error {
	var err error
	if cl.IssuedAt, err = m.GetIssuedAt(); err != nil {
		return fmt.Errorf("%w: %s: iat is not a number", signature.ErrMalformed, what)
	}
	names := [...]string{"jti", "sub", ClaimHTM, ClaimHTU, ClaimBSH, "ath"}
	dst := [...]*string{&cl.ID, &cl.Subject, &cl.HTM, &cl.HTU, &cl.BSH, &cl.ATH}
	for i, name := range names {
		v, ok := m[name]
		if !ok {
			continue
		}
		str, ok := v.(string)
		if !ok {
			return fmt.Errorf("%w: %s: %s is not a string", signature.ErrMalformed, what, name)
		}
		*dst[i] = str
	}
	if v, ok := m["cnf"]; ok {
		cnf, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%w: %s: cnf is not an object", signature.ErrMalformed, what)
		}
		cl.cnf = true
		if v, ok := cnf["jkt"]; ok {
			if cl.JKT, ok = v.(string); !ok {
				return fmt.Errorf("%w: %s: cnf.jkt is not a string", signature.ErrMalformed, what)
			}
		}
	}
	return nil
}

// call is the state of one verification.
type call struct {
	s      *Scheme
	kid    string
	keyErr error  // the key function's own rejection
	jkt    string // thumbprint of a DPoP proof's key
}

// Verify implements Scheme.
func (s *Scheme) Verify(_ context.Context, r *signature.Request) (signature.Verified, error) {
	raw, dpop, err := s.credentials(r.Header)
	if err != nil {
		return signature.Verified{}, err
	}
	if dpop {
		return s.verifyDPoP(raw, r)
	}
	c := &call{s: s}
	var cl tokenClaims
	if err := c.parseToken(raw, &cl); err != nil {
		return signature.Verified{}, s.bearerErr(err)
	}
	if cl.cnf {
		return signature.Verified{}, s.bearerErr(fmt.Errorf("%w: jwt: a DPoP-bound token (cnf.jkt) presented as a bearer token", signature.ErrInvalid))
	}
	if err := checkBinding(&cl, r, s.bind, "jwt"); err != nil {
		return signature.Verified{}, s.bearerErr(err)
	}
	if cl.IssuedAt == nil {
		return signature.Verified{}, s.bearerErr(fmt.Errorf("%w: jwt: iat claim", timestamp.ErrMissing))
	}
	if err := checkJTI(cl.ID, "jwt"); err != nil {
		return signature.Verified{}, s.bearerErr(err)
	}
	if err := checkSubject(cl.Subject, "jwt"); err != nil {
		return signature.Verified{}, s.bearerErr(err)
	}
	return signature.Verified{KeyID: c.kid, Subject: cl.Subject, Timestamp: cl.IssuedAt.Time, ReplayKey: cl.ID}, nil
}

func checkJTI(jti, what string) error {
	if jti == "" {
		return fmt.Errorf("%w: %s: jti claim", nonce.ErrMissing, what)
	}
	if len(jti) > MaxJTIBytes {
		return fmt.Errorf("%w: %s: jti longer than %d bytes", nonce.ErrMalformed, what, MaxJTIBytes)
	}
	if signature.HasControl(jti) {
		return fmt.Errorf("%w: %s: jti contains a control byte", nonce.ErrMalformed, what)
	}
	return nil
}

// checkSubject holds a token's sub to what may scope records and travel to
// the upstream in a header.
func checkSubject(sub, what string) error {
	if len(sub) > signature.MaxSubjectBytes {
		return fmt.Errorf("%w: %s: sub longer than %d bytes", signature.ErrMalformed, what, signature.MaxSubjectBytes)
	}
	if signature.HasControl(sub) {
		return fmt.Errorf("%w: %s: sub contains a control byte", signature.ErrMalformed, what)
	}
	return nil
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

// checkRegistered checks exp and nbf against the clock with the leeway, as
// golang-jwt's validator does (valid while now < exp+leeway and
// now >= nbf-leeway), and iss, aud and sub when configured.
func (s *Scheme) checkRegistered(m jwt.MapClaims) error {
	now := s.now()
	exp, err := m.GetExpirationTime()
	if err != nil {
		return fmt.Errorf("%w: jwt: exp is not a number", signature.ErrMalformed)
	}
	if exp != nil && !now.Before(exp.Add(s.leeway)) {
		return fmt.Errorf("%w: jwt: exp has passed", timestamp.ErrExpired)
	}
	nbf, err := m.GetNotBefore()
	if err != nil {
		return fmt.Errorf("%w: jwt: nbf is not a number", signature.ErrMalformed)
	}
	if nbf != nil && now.Before(nbf.Add(-s.leeway)) {
		return fmt.Errorf("%w: jwt: nbf is ahead", timestamp.ErrInFuture)
	}
	if s.issuer != "" {
		iss, err := m.GetIssuer()
		switch {
		case err != nil:
			return fmt.Errorf("%w: jwt: iss is not a string", signature.ErrMalformed)
		case iss == "":
			return fmt.Errorf("%w: jwt: iss claim", signature.ErrMissing)
		case iss != s.issuer:
			return fmt.Errorf("%w: jwt: iss does not match", signature.ErrInvalid)
		}
	}
	if s.audience != "" {
		aud, err := m.GetAudience()
		if err != nil {
			return fmt.Errorf("%w: jwt: aud is not a string or an array of strings", signature.ErrMalformed)
		}
		if len(aud) == 0 {
			return fmt.Errorf("%w: jwt: aud claim", signature.ErrMissing)
		}
		found := false
		for _, a := range aud {
			if a == s.audience {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("%w: jwt: aud does not match", signature.ErrInvalid)
		}
	}
	if s.subject != "" {
		sub, err := m.GetSubject()
		switch {
		case err != nil:
			return fmt.Errorf("%w: jwt: sub is not a string", signature.ErrMalformed)
		case sub == "":
			return fmt.Errorf("%w: jwt: sub claim", signature.ErrMissing)
		case sub != s.subject:
			return fmt.Errorf("%w: jwt: sub does not match", signature.ErrInvalid)
		}
	}
	return nil
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

// checkBinding checks the binding claims of a token or proof against the
// request: the claims in required must be present, and every binding claim
// present must match.
func checkBinding(cl *tokenClaims, r *signature.Request, required binding, what string) error {
	if cl.HTM == "" {
		if required&bindHTM != 0 {
			return fmt.Errorf("%w: %s: htm claim", signature.ErrMissing, what)
		}
	} else if cl.HTM != r.Method {
		return fmt.Errorf("%w: %s: htm does not match the request method", signature.ErrInvalid, what)
	}
	if cl.HTU == "" {
		if required&bindHTU != 0 {
			return fmt.Errorf("%w: %s: htu claim", signature.ErrMissing, what)
		}
	} else if !htuMatches(cl.HTU, r) {
		return fmt.Errorf("%w: %s: htu does not match the request URI", signature.ErrInvalid, what)
	}
	if cl.BSH == "" {
		if required&bindBSH != 0 {
			return fmt.Errorf("%w: %s: bsh claim", signature.ErrMissing, what)
		}
	} else if !hashMatches(cl.BSH, r.Body) {
		return fmt.Errorf("%w: %s: bsh does not match the request body", signature.ErrInvalid, what)
	}
	return nil
}

// htuMatches compares an htu claim with the request's
// scheme://host/path as an exact string: scheme, host lowercased, path
// as sent, no query (SPEC §3.2).
func htuMatches(htu string, r *signature.Request) bool {
	scheme := r.Scheme
	if scheme == "" {
		scheme = "http"
	}
	rest, ok := strings.CutPrefix(htu, scheme)
	if !ok {
		return false
	}
	if rest, ok = strings.CutPrefix(rest, "://"); !ok || len(rest) < len(r.Host) {
		return false
	}
	for i := 0; i < len(r.Host); i++ {
		c := r.Host[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if rest[i] != c {
			return false
		}
	}
	path := r.Target
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	return rest[len(r.Host):] == path
}

// HTU returns the htu of a request about to be sent: scheme, host as sent
// in the Host header (lowercased) and path as sent, without the query.
func HTU(req *http.Request) (string, error) {
	if req.URL == nil {
		return "", errors.New("signature: request has no URL")
	}
	host, err := sigutil.WireHost(req)
	if err != nil {
		return "", err
	}
	path := req.URL.RequestURI()
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	return strings.ToLower(req.URL.Scheme) + "://" + strings.ToLower(host) + path, nil
}

// BodyHash returns the bsh of a body: base64url(SHA-256(body)), unpadded.
func BodyHash(body []byte) string {
	sum := sha256.Sum256(body)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// hashMatches reports whether claim is the unpadded base64url SHA-256 of b.
func hashMatches(claim string, b []byte) bool {
	if len(claim) != 43 {
		return false
	}
	sum := sha256.Sum256(b)
	var enc [43]byte
	base64.RawURLEncoding.Encode(enc[:], sum[:])
	return string(enc[:]) == claim
}
