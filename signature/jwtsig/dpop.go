package jwtsig

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/internal/sigutil"
	"github.com/replayguard/replayguard/timestamp"
)

// DPoP names (RFC 9449).
const (
	// DPoPPrefix is the authentication scheme of a DPoP-bound token:
	// "Authorization: DPoP <token>".
	DPoPPrefix = "DPoP"
	// DPoPHeader carries the proof.
	DPoPHeader = "DPoP"
	// DPoPType is the typ header of a proof.
	DPoPType = dpopType
)

const dpopType = "dpop+jwt"

// dpopHeaderKey is DPoPHeader in canonical form.
const dpopHeaderKey = "Dpop"

// AccessTokenHash returns the ath of an access token (RFC 9449 §4.2):
// base64url(SHA-256(token)), unpadded.
func AccessTokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// verifyDPoP verifies a token presented as "DPoP <token>" with the proof in
// the DPoP header. The token must carry cnf.jkt, the thumbprint of the
// proof's key; the proof must carry jti, htm, htu, iat and ath (and bsh when
// the body is bound), and its jti and iat become the replay key and the
// timestamp.
func (s *Scheme) verifyDPoP(raw string, r *signature.Request) (signature.Verified, error) {
	proofs := r.Header[dpopHeaderKey]
	if len(proofs) == 0 || proofs[0] == "" {
		return signature.Verified{}, s.proofErr(fmt.Errorf("%w: dpop: DPoP header", signature.ErrMissing))
	}
	if len(proofs) > 1 {
		return signature.Verified{}, s.proofErr(fmt.Errorf("%w: dpop: more than one DPoP header", signature.ErrMalformed))
	}
	tc := &call{s: s}
	var cl tokenClaims
	if err := tc.parseToken(raw, &cl); err != nil {
		return signature.Verified{}, s.dpopTokenErr(err)
	}
	if cl.JKT == "" {
		return signature.Verified{}, s.dpopTokenErr(fmt.Errorf("%w: dpop: the token has no cnf.jkt", signature.ErrMissing))
	}
	if err := checkBinding(&cl, r, 0, "jwt"); err != nil {
		return signature.Verified{}, s.dpopTokenErr(err)
	}

	pc := &call{s: s}
	var pcl tokenClaims
	if err := pc.parseProof(proofs[0], &pcl); err != nil {
		return signature.Verified{}, s.proofErr(err)
	}
	if err := checkBinding(&pcl, r, bindHTM|bindHTU|(s.bind&bindBSH), "dpop"); err != nil {
		return signature.Verified{}, s.proofErr(err)
	}
	if pcl.ATH == "" {
		return signature.Verified{}, s.proofErr(fmt.Errorf("%w: dpop: ath claim", signature.ErrMissing))
	}
	if !hashMatches(pcl.ATH, []byte(raw)) {
		return signature.Verified{}, s.proofErr(fmt.Errorf("%w: dpop: ath does not match the access token", signature.ErrInvalid))
	}
	if pc.jkt != cl.JKT {
		return signature.Verified{}, s.dpopTokenErr(fmt.Errorf("%w: dpop: the token is bound to another key", signature.ErrInvalid))
	}
	if pcl.IssuedAt == nil {
		return signature.Verified{}, s.proofErr(fmt.Errorf("%w: dpop: iat claim", timestamp.ErrMissing))
	}
	if err := checkJTI(pcl.ID, "dpop"); err != nil {
		return signature.Verified{}, s.proofErr(err)
	}
	if err := checkSubject(cl.Subject, "jwt"); err != nil {
		return signature.Verified{}, s.dpopTokenErr(err)
	}
	return signature.Verified{KeyID: tc.kid, Subject: cl.Subject, Timestamp: pcl.IssuedAt.Time, ReplayKey: pcl.ID}, nil
}

func (s *Scheme) proofErr(err error) error {
	return sigutil.WithChallenge(err, DPoPPrefix+` error="invalid_dpop_proof", `+s.dpopAlgs)
}

func (s *Scheme) dpopTokenErr(err error) error {
	return sigutil.WithChallenge(err, DPoPPrefix+` error="invalid_token", `+s.dpopAlgs)
}

// parseProof verifies a DPoP proof's signature with the key in its header.
func (c *call) parseProof(raw string, cl *tokenClaims) error {
	if err := checkCompact(raw, c.s.maxToken, "dpop"); err != nil {
		return err
	}
	m := jwt.MapClaims{}
	tok, err := c.s.proofParser.ParseWithClaims(raw, m, c.proofKey)
	if err != nil {
		return c.classify(tok, err, "dpop")
	}
	if !tok.Valid {
		return fmt.Errorf("%w: dpop: proof rejected", signature.ErrInvalid)
	}
	return readClaims(m, cl, "dpop")
}

// proofKey is the key function of DPoP proofs: typ dpop+jwt, an asymmetric
// public jwk fitting the alg.
func (c *call) proofKey(t *jwt.Token) (any, error) {
	key, err := proofJWK(t)
	if err == nil {
		c.jkt, err = signature.JWKThumbprint(key)
		if err != nil {
			err = fmt.Errorf("%w: dpop: jwk", signature.ErrMalformed)
		}
	}
	if err != nil {
		c.keyErr = err
		return nil, err
	}
	return key, nil
}

func proofJWK(t *jwt.Token) (any, error) {
	if err := checkCrit(t.Header); err != nil {
		return nil, err
	}
	typ, _ := t.Header["typ"].(string)
	if !strings.EqualFold(typ, dpopType) {
		return nil, fmt.Errorf("%w: dpop: typ is not %s", signature.ErrInvalid, dpopType)
	}
	v, ok := t.Header["jwk"]
	if !ok {
		return nil, fmt.Errorf("%w: dpop: jwk header", signature.ErrMissing)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: dpop: jwk is not an object", signature.ErrMalformed)
	}
	jk, err := signature.ParseJWK(m)
	if errors.Is(err, signature.ErrPrivateKey) {
		return nil, fmt.Errorf("%w: dpop: jwk holds a private key", signature.ErrInvalid)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: dpop: jwk does not parse", signature.ErrMalformed)
	}
	if _, ok := jk.Secret(); ok {
		return nil, fmt.Errorf("%w: dpop: jwk is a symmetric key", signature.ErrInvalid)
	}
	if _, err := signature.KeyAlgorithm(jk.Key, t.Method.Alg()); err != nil {
		return nil, fmt.Errorf("%w: dpop: alg does not fit the jwk", signature.ErrInvalid)
	}
	return jk.Key, nil
}
