package webhooksig

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/replayguard/replayguard/signature"
)

// Signer signs requests the way a webhook provider signs its
// deliveries: for tests, and to replay provider traffic locally.
type Signer struct {
	// Preset names the provider (PresetStandardWebhooks, …).
	Preset string
	// Secret is the MAC key: the decoded bytes (see ParseWebhookSecret).
	Secret []byte
	// PrivateKey signs standard-webhooks "v1a" signatures instead of
	// Secret.
	PrivateKey ed25519.PrivateKey
	// DeliveryID is the webhook-id, X-GitHub-Delivery or
	// X-Shopify-Webhook-Id. Default: "msg_" and a random UUID.
	DeliveryID string
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

var _ signature.Signer = (*Signer)(nil)

// Sign sets the preset's headers on req for body.
func (s *Signer) Sign(req *http.Request, body []byte) error {
	if len(s.Secret) == 0 && s.PrivateKey == nil {
		return errors.New("signature: webhook signer: a secret is required")
	}
	now := webhookNow
	if s.Now != nil {
		now = s.Now
	}
	ts := strconv.FormatInt(now().Unix(), 10)
	id := s.DeliveryID
	if id == "" {
		id = "msg_" + uuid.NewString()
	}
	if req.Header == nil {
		req.Header = http.Header{}
	}
	mac := func(prefix string) []byte {
		m := hmac.New(sha256.New, s.Secret)
		m.Write([]byte(prefix))
		m.Write(body)
		return m.Sum(nil)
	}
	switch s.Preset {
	case PresetStandardWebhooks:
		req.Header.Set(StandardWebhookIDHeader, id)
		req.Header.Set(StandardWebhookTimestampHeader, ts)
		prefix := id + "." + ts + "."
		if s.PrivateKey != nil {
			msg := append([]byte(prefix), body...)
			req.Header.Set(StandardWebhookSignatureHeader, "v1a,"+base64.StdEncoding.EncodeToString(ed25519.Sign(s.PrivateKey, msg)))
			return nil
		}
		req.Header.Set(StandardWebhookSignatureHeader, "v1,"+base64.StdEncoding.EncodeToString(mac(prefix)))
	case PresetStripe:
		req.Header.Set(StripeSignatureHeader, "t="+ts+",v1="+hex.EncodeToString(mac(ts+".")))
	case PresetGitHub:
		req.Header.Set(GitHubDeliveryHeader, id)
		req.Header.Set(GitHubSignatureHeader, "sha256="+hex.EncodeToString(mac("")))
	case PresetSlack:
		req.Header.Set(SlackTimestampHeader, ts)
		req.Header.Set(SlackSignatureHeader, "v0="+hex.EncodeToString(mac("v0:"+ts+":")))
	case PresetShopify:
		req.Header.Set(ShopifyWebhookIDHeader, id)
		req.Header.Set(ShopifySignatureHeader, base64.StdEncoding.EncodeToString(mac("")))
	default:
		return fmt.Errorf("signature: webhook signer: unknown preset %q", s.Preset)
	}
	return nil
}
