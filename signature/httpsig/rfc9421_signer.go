package httpsig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/internal/sigutil"

	"github.com/google/uuid"

	"github.com/replayguard/replayguard/signature/internal/sfv"
)

// DefaultLabel is the label RFC9421Signer gives its signature.
const DefaultLabel = "sig1"

// Signer signs requests with HTTP Message Signatures (RFC 9421).
//
// By default it covers @method and @target-uri, plus content-digest
// (setting Content-Digest: sha-256) when the body is not empty and
// idempotency-key when the request carries an Idempotency-Key, and adds
// created, keyid and a random nonce.
type Signer struct {
	// KeyID is sent as the keyid parameter. Required.
	KeyID string
	// Algorithm is the RFC 9421 (or JOSE) algorithm name. Default:
	// hmac-sha256 with a Secret; ed25519, ecdsa-p256-sha256 or
	// ecdsa-p384-sha384 from the PrivateKey; RSA keys need it set.
	Algorithm string
	// Secret is the hmac-sha256 key (see ParseSecret).
	Secret []byte
	// PrivateKey signs with the asymmetric algorithms.
	PrivateKey crypto.Signer
	// Label names the signature in both fields. Default "sig1".
	Label string
	// Components are the covered components, each a name or a serialized
	// component identifier (see ParseComponent), in order. Default as
	// described above.
	Components []string
	// Digest is the Content-Digest algorithm, "sha-256" (default) or
	// "sha-512". The field is set when content-digest is covered and the
	// request has none.
	Digest string
	// Expires adds an expires parameter this long after created. Zero
	// adds none.
	Expires time.Duration
	// Tag is sent as the tag parameter when not empty.
	Tag string
	// IncludeAlg sends the alg parameter.
	IncludeAlg bool
	// OmitNonce leaves out the nonce parameter; verifiers then use the
	// signature itself as the replay key.
	OmitNonce bool
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// NewNonce returns a fresh nonce. Default: a random UUID v4.
	NewNonce func() string
	// Rand is the randomness of ECDSA and RSA-PSS. Default crypto/rand.
	Rand io.Reader
	// FieldTypes names structured fields covered with ";sf" besides
	// DefaultFieldTypes().
	FieldTypes map[string]FieldType
}

var _ signature.Signer = (*Signer)(nil)

func (s *Signer) algorithm() (string, error) {
	if s.Algorithm != "" {
		alg, ok := Algorithm(s.Algorithm)
		if !ok {
			return "", fmt.Errorf("signature: rfc9421 signer: unknown algorithm %q", s.Algorithm)
		}
		return alg, nil
	}
	if s.PrivateKey == nil {
		return AlgHMACSHA256, nil
	}
	switch k := s.PrivateKey.(type) {
	case ed25519.PrivateKey:
		return AlgEd25519, nil
	case *ecdsa.PrivateKey:
		if k.Curve == elliptic.P384() {
			return AlgECDSAP384SHA384, nil
		}
		return AlgECDSAP256SHA256, nil
	case *rsa.PrivateKey:
		return "", errors.New("signature: rfc9421 signer: an RSA key needs Algorithm (rsa-pss-sha512 or rsa-v1_5-sha256)")
	}
	return "", fmt.Errorf("signature: rfc9421 signer: unsupported private key %T", s.PrivateKey)
}

// Sign sets Signature-Input and Signature (and Content-Digest when it is
// covered and absent) on req. A request already carrying signatures under
// other labels keeps them.
func (s *Signer) Sign(req *http.Request, body []byte) error {
	if s.KeyID == "" {
		return errors.New("signature: rfc9421 signer: key id is required")
	}
	if req.URL == nil {
		return errors.New("signature: rfc9421 signer: request has no URL")
	}
	alg, err := s.algorithm()
	if err != nil {
		return err
	}
	label := s.Label
	if label == "" {
		label = DefaultLabel
	}
	if !sfv.ValidKey(label) {
		return fmt.Errorf("signature: rfc9421 signer: invalid label %q", label)
	}
	if req.Header == nil {
		req.Header = http.Header{}
	}
	params, err := s.coverage(req, body, alg)
	if err != nil {
		return err
	}
	host, err := sigutil.WireHost(req)
	if err != nil {
		return err
	}
	scheme := req.URL.Scheme
	if scheme == "" {
		scheme = "http"
	}
	msg := &HTTPMessage{Method: req.Method, Scheme: scheme, Authority: host, Target: req.URL.RequestURI(), Header: req.Header}
	base, err := SignatureBase(msg, params, s.FieldTypes)
	if err != nil {
		return err
	}
	sig, err := signRFC9421(alg, s.Secret, s.PrivateKey, s.Rand, base)
	if err != nil {
		return err
	}
	for _, existing := range req.Header.Values(SignatureInputHeader) {
		d, err := sfv.ParseDictionary(existing)
		if err == nil && hasLabel(d, label) {
			return fmt.Errorf("signature: rfc9421 signer: the request already has a signature labelled %q", label)
		}
	}
	in, err := sfv.MarshalDictionary(sfv.Dictionary{{Key: label, Value: sfv.InnerListMember(params)}})
	if err != nil {
		return fmt.Errorf("signature: rfc9421 signer: %w", err)
	}
	out, err := sfv.MarshalDictionary(sfv.Dictionary{{Key: label, Value: sfv.ItemMember(sfv.Item{Value: sfv.ByteSequence(sig)})}})
	if err != nil {
		return fmt.Errorf("signature: rfc9421 signer: %w", err)
	}
	req.Header.Add(SignatureInputHeader, in)
	req.Header.Add(SignatureHeader, out)
	return nil
}

// coverage returns the signature's inner list: the covered components
// (setting Content-Digest when it is covered and absent) and the
// parameters created, keyid and, as configured, alg, expires, nonce, tag.
func (s *Signer) coverage(req *http.Request, body []byte, alg string) (sfv.InnerList, error) {
	names := s.Components
	if names == nil {
		names = []string{"@method", "@target-uri"}
		if len(body) > 0 {
			names = append(names, "content-digest")
		}
		if req.Header.Get(signature.IdempotencyKeyHeader) != "" {
			names = append(names, "idempotency-key")
		}
	}
	params := sfv.InnerList{Items: make([]sfv.Item, 0, len(names))}
	for _, n := range names {
		c, err := ParseComponent(n)
		if err != nil {
			return sfv.InnerList{}, fmt.Errorf("signature: rfc9421 signer: %w", err)
		}
		if c.Name == "content-digest" && len(req.Header.Values(ContentDigestHeader)) == 0 {
			alg := s.Digest
			if alg == "" {
				alg = DigestSHA256
			}
			v, err := ContentDigest(alg, body)
			if err != nil {
				return sfv.InnerList{}, err
			}
			req.Header.Set(ContentDigestHeader, v)
		}
		params.Items = append(params.Items, c.Item())
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	created := now().Unix()
	params.Params = append(params.Params, sfv.Param{Key: "created", Value: sfv.Integer(created)}, sfv.Param{Key: "keyid", Value: sfv.String(s.KeyID)})
	if s.IncludeAlg {
		params.Params = append(params.Params, sfv.Param{Key: "alg", Value: sfv.String(alg)})
	}
	if s.Expires > 0 {
		params.Params = append(params.Params, sfv.Param{Key: "expires", Value: sfv.Integer(created + int64(s.Expires/time.Second))})
	}
	if !s.OmitNonce {
		n := ""
		if s.NewNonce != nil {
			n = s.NewNonce()
		} else {
			n = uuid.NewString()
		}
		params.Params = append(params.Params, sfv.Param{Key: "nonce", Value: sfv.String(n)})
	}
	if s.Tag != "" {
		params.Params = append(params.Params, sfv.Param{Key: "tag", Value: sfv.String(s.Tag)})
	}
	return params, nil
}
