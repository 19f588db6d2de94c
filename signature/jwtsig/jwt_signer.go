package jwtsig

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/replayguard/replayguard/signature"
)

// DefaultSignerTTL is how long a minted token stays valid (its exp).
const DefaultSignerTTL = 5 * time.Minute

// Signer signs requests with the jwt scheme: every request gets a token
// of its own, with a fresh jti, iat now, exp iat+TTL and the binding claims
// of its method, URI and body.
type Signer struct {
	// KeyID is sent as the kid header. Required.
	KeyID string
	// Key signs: the secret bytes ([]byte) of an HMAC key, or an
	// *ecdsa.PrivateKey, ed25519.PrivateKey or *rsa.PrivateKey. Required.
	Key any
	// Algorithm is the key's one algorithm. Default: HS256 for a secret,
	// the algorithm an ECDSA curve or Ed25519 key implies; required for RSA.
	Algorithm string
	// Issuer, Subject and Audience set iss, sub and aud when not empty.
	Issuer, Subject, Audience string
	// TTL sets exp to iat+TTL. Default DefaultJWTSignerTTL; negative: no exp.
	TTL time.Duration
	// Bind names the binding claims to add. Nil: DefaultJWTBind; empty:
	// none.
	Bind []string
	// Confirmation, when set, binds the token to a DPoP key: cnf.jkt.
	Confirmation string
	// Header and Prefix place the token. Default "Authorization" and, in
	// that header, "Bearer"; another header gets no prefix unless set.
	Header, Prefix string
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// NewJTI returns a fresh jti. Default: a random UUID v4.
	NewJTI func() string
}

var _ signature.Signer = (*Signer)(nil)

// Sign sets the token header on req.
func (s *Signer) Sign(req *http.Request, body []byte) error {
	tok, err := s.Token(req, body)
	if err != nil {
		return err
	}
	header, prefix := s.Header, s.Prefix
	if header == "" {
		header = DefaultHeader
	}
	if prefix == "" && strings.EqualFold(header, DefaultHeader) {
		prefix = DefaultPrefix
	}
	if prefix != "" {
		tok = prefix + " " + tok
	}
	req.Header.Set(header, tok)
	return nil
}

// Token mints the token for req and its body.
func (s *Signer) Token(req *http.Request, body []byte) (string, error) {
	if s.KeyID == "" || s.Key == nil {
		return "", errors.New("signature: jwt signer: key id and key are required")
	}
	method, err := signingMethod(s.Key, s.Algorithm)
	if err != nil {
		return "", fmt.Errorf("signature: jwt signer: %w", err)
	}
	bind := s.Bind
	if bind == nil {
		bind = DefaultBind()
	}
	b, err := parseBind(bind)
	if err != nil {
		return "", err
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	t := now()
	claims := jwt.MapClaims{"jti": newJTI(s.NewJTI), "iat": t.Unix()}
	ttl := s.TTL
	if ttl == 0 {
		ttl = DefaultSignerTTL
	}
	if ttl > 0 {
		claims["exp"] = t.Add(ttl).Unix()
	}
	if s.Issuer != "" {
		claims["iss"] = s.Issuer
	}
	if s.Subject != "" {
		claims["sub"] = s.Subject
	}
	if s.Audience != "" {
		claims["aud"] = s.Audience
	}
	if s.Confirmation != "" {
		claims["cnf"] = map[string]any{"jkt": s.Confirmation}
	}
	if err := addBinding(claims, b, req, body); err != nil {
		return "", err
	}
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["kid"] = s.KeyID
	out, err := tok.SignedString(s.Key)
	if err != nil {
		return "", fmt.Errorf("signature: jwt signer: %w", err)
	}
	return out, nil
}

func addBinding(claims jwt.MapClaims, b binding, req *http.Request, body []byte) error {
	if b&bindHTM != 0 {
		claims[ClaimHTM] = req.Method
	}
	if b&bindHTU != 0 {
		htu, err := HTU(req)
		if err != nil {
			return err
		}
		claims[ClaimHTU] = htu
	}
	if b&bindBSH != 0 {
		claims[ClaimBSH] = BodyHash(body)
	}
	return nil
}

func newJTI(f func() string) string {
	if f != nil {
		return f()
	}
	return uuid.NewString()
}

// signingMethod returns the golang-jwt method of a signing key and its
// algorithm, checked as the verifying side checks it.
func signingMethod(key any, alg string) (jwt.SigningMethod, error) {
	var pub any
	// The named byte-slice type comes before []byte (see secretKey).
	switch k := key.(type) {
	case ed25519.PrivateKey:
		pub = k.Public()
	case []byte:
		pub = k
		if alg == "" {
			alg = "HS256"
		}
	case crypto.Signer:
		pub = k.Public()
	default:
		return nil, fmt.Errorf("unsupported signing key type %T", key)
	}
	alg, err := signature.KeyAlgorithm(pub, alg)
	if err != nil {
		return nil, err
	}
	m := jwt.GetSigningMethod(alg)
	if m == nil {
		return nil, fmt.Errorf("algorithm %q is not available", alg)
	}
	return m, nil
}

// DPoPSigner signs requests with DPoP (RFC 9449): the access token goes in
// "Authorization: DPoP <token>" and a fresh proof, signed with the client's
// key, in the DPoP header.
type DPoPSigner struct {
	// Key is the client's proof key: *ecdsa.PrivateKey, ed25519.PrivateKey
	// or *rsa.PrivateKey. Required.
	Key crypto.Signer
	// Algorithm of the proofs. Default: the one an ECDSA curve or Ed25519
	// key implies, PS256 for RSA.
	Algorithm string
	// AccessToken is the DPoP-bound token to present. Either it or Mint.
	AccessToken string
	// Mint, when set, mints an access token for every request, bound to
	// Key (its Confirmation is set to Key's thumbprint).
	Mint *Signer
	// OmitBodyHash leaves bsh out of the proofs; a server binding the body
	// then rejects them.
	OmitBodyHash bool
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// NewJTI returns a fresh proof jti. Default: a random UUID v4.
	NewJTI func() string
}

var _ signature.Signer = (*DPoPSigner)(nil)

// Thumbprint returns the jkt of the proof key: the cnf.jkt an access token
// bound to it carries.
func (s *DPoPSigner) Thumbprint() (string, error) {
	if s.Key == nil {
		return "", errors.New("signature: dpop signer: key is required")
	}
	return signature.JWKThumbprint(s.Key.Public())
}

// Sign sets the Authorization and DPoP headers on req.
func (s *DPoPSigner) Sign(req *http.Request, body []byte) error {
	token := s.AccessToken
	if s.Mint != nil {
		jkt, err := s.Thumbprint()
		if err != nil {
			return err
		}
		m := *s.Mint
		m.Confirmation = jkt
		if token, err = m.Token(req, body); err != nil {
			return err
		}
	}
	if token == "" {
		return errors.New("signature: dpop signer: no access token")
	}
	proof, err := s.Proof(req, body, token)
	if err != nil {
		return err
	}
	req.Header.Set(DefaultHeader, DPoPPrefix+" "+token)
	req.Header.Set(DPoPHeader, proof)
	return nil
}

// Proof mints a DPoP proof for req, its body and the access token it
// carries.
func (s *DPoPSigner) Proof(req *http.Request, body []byte, accessToken string) (string, error) {
	if s.Key == nil {
		return "", errors.New("signature: dpop signer: key is required")
	}
	alg := s.Algorithm
	if _, isRSA := s.Key.Public().(*rsa.PublicKey); isRSA && alg == "" {
		alg = "PS256"
	}
	method, err := signingMethod(s.Key, alg)
	if err != nil {
		return "", fmt.Errorf("signature: dpop signer: %w", err)
	}
	jwk, err := signature.PublicJWK(s.Key)
	if err != nil {
		return "", err
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	claims := jwt.MapClaims{"jti": newJTI(s.NewJTI), "iat": now().Unix()}
	b := bindHTM | bindHTU
	if !s.OmitBodyHash {
		b |= bindBSH
	}
	if err := addBinding(claims, b, req, body); err != nil {
		return "", err
	}
	if accessToken != "" {
		claims["ath"] = AccessTokenHash(accessToken)
	}
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["typ"] = dpopType
	tok.Header["jwk"] = jwk
	out, err := tok.SignedString(s.Key)
	if err != nil {
		return "", fmt.Errorf("signature: dpop signer: %w", err)
	}
	return out, nil
}
