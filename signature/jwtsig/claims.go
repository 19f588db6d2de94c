package jwtsig

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/golang-jwt/jwt/v5"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/internal/sigutil"
	"github.com/replayguard/replayguard/timestamp"
)

// DefaultBind is the request binding in force when none is configured.
func DefaultBind() []string { return []string{ClaimHTM, ClaimHTU, ClaimBSH} }

type binding uint8

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
// as sent, no query (the jwt wire format (docs/wire-format.md)).
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
