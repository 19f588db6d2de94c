package hmacsig

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/internal/sigutil"
)

// Signer signs requests with the hmac scheme.
type Signer struct {
	// KeyID is sent in the key id header.
	KeyID string
	// Secret is the key's secret bytes (see ParseSecret).
	Secret []byte
	// Headers overrides header names; empty fields keep their defaults.
	Headers Headers
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// NewNonce returns a fresh nonce. Default: a random UUID v4.
	NewNonce func() string
}

var _ signature.Signer = (*Signer)(nil)

// Sign sets the key id, timestamp, nonce and signature headers on req,
// signing the Idempotency-Key header already on it, if any.
func (s *Signer) Sign(req *http.Request, body []byte) error {
	if s.KeyID == "" || len(s.Secret) == 0 {
		return errors.New("signature: hmac signer: key id and secret are required")
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	nonceVal := ""
	if s.NewNonce != nil {
		nonceVal = s.NewNonce()
	} else {
		nonceVal = uuid.NewString()
	}
	if !ValidNonce(nonceVal) {
		return fmt.Errorf("signature: hmac signer: nonce %q is outside the allowed syntax", nonceVal)
	}
	if req.URL == nil {
		return errors.New("signature: hmac signer: request has no URL")
	}
	hd := s.Headers.withDefaults()
	ts := strconv.FormatInt(now().Unix(), 10)
	host, err := sigutil.WireHost(req)
	if err != nil {
		return err
	}
	target := req.URL.RequestURI()
	sts := AppendStringToSign(nil, req.Method, host, target, ts, nonceVal, req.Header.Get(signature.IdempotencyKeyHeader), body)
	req.Header.Set(hd.KeyID, s.KeyID)
	req.Header.Set(hd.Timestamp, ts)
	req.Header.Set(hd.Nonce, nonceVal)
	req.Header.Set(hd.Signature, Sign(s.Secret, sts))
	return nil
}
