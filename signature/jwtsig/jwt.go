package jwtsig

import (
	"context"
	"errors"
	"fmt"
	"net/textproto"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/internal/sigutil"
	"github.com/replayguard/replayguard/signature/jwks"

	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/replayguard/replayguard/timestamp"
)

// Request-binding claims of the jwt scheme (the jwt wire format (docs/wire-format.md)).
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

const (
	bindHTM binding = 1 << iota
	bindHTU
	bindBSH
)

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
