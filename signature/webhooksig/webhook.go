package webhooksig

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/internal/sigutil"
)

// Scheme presets: the signature schemes of webhook providers.
const (
	PresetStandardWebhooks = "standard-webhooks"
	PresetStripe           = "stripe"
	PresetGitHub           = "github"
	PresetSlack            = "slack"
	PresetShopify          = "shopify"
)

// Presets lists the presets NewWebhook accepts.
func Presets() []string {
	return []string{PresetStandardWebhooks, PresetStripe, PresetGitHub, PresetSlack, PresetShopify}
}

// Header names of the presets, in canonical form.
const (
	StandardWebhookIDHeader        = "Webhook-Id"
	StandardWebhookTimestampHeader = "Webhook-Timestamp"
	StandardWebhookSignatureHeader = "Webhook-Signature"
	SvixIDHeader                   = "Svix-Id"
	SvixTimestampHeader            = "Svix-Timestamp"
	SvixSignatureHeader            = "Svix-Signature"
	StripeSignatureHeader          = "Stripe-Signature"
	GitHubSignatureHeader          = "X-Hub-Signature-256"
	GitHubDeliveryHeader           = "X-Github-Delivery"
	SlackSignatureHeader           = "X-Slack-Signature"
	SlackTimestampHeader           = "X-Slack-Request-Timestamp"
	ShopifySignatureHeader         = "X-Shopify-Hmac-Sha256"
	ShopifyWebhookIDHeader         = "X-Shopify-Webhook-Id"
)

// Secret prefixes of the Standard Webhooks specification.
const (
	StandardWebhooksSecretPrefix    = "whsec_"
	StandardWebhooksPublicKeyPrefix = "whpk_"
)

// Bounds of what the presets parse.
const (
	maxWebhookHeader = 4096
	maxDeliveryID    = 255
	macSize          = sha256.Size
)

// MaxEd25519Signatures is the most standard-webhooks "v1a," signatures of
// one header that are tried, and one only when the header also carries
// "v1," signatures and keys have secrets to compute their MACs with; past
// that, a delivery that verifies with none of those tried is refused as
// malformed. A provider signs once per key it holds:
// once, twice during a rotation.
//
// The cap bounds what a forged delivery costs. Each secret's MAC over the
// delivery is computed once and compared with every "v1," signature, so MAC
// signatures add a compare each and need no cap. An Ed25519 signature is a
// full pass over the delivery per public key (RFC 8032 hashes the
// signature's R and the key before the message, so no pass is shared). A
// valid delivery signed by the last key costs one such pass per public key;
// a forged one costs two, or one plus a MAC per secret (on hardware without
// SHA instructions a MAC pass costs more than an Ed25519 one).
const MaxEd25519Signatures = 2

// ParseSecret decodes a configured secret for a preset. Under
// standard-webhooks a "whsec_" secret is the base64 after the prefix, as
// the Standard Webhooks specification defines; every other secret (and
// every secret of the other presets, Stripe's "whsec_" ones included) is
// read by ParseSecret.
func ParseSecret(preset, s string) ([]byte, error) {
	if preset == PresetStandardWebhooks {
		if rest, ok := strings.CutPrefix(s, StandardWebhooksSecretPrefix); ok {
			b, err := decodeLenientBase64(rest)
			if err != nil {
				return nil, fmt.Errorf("signature: secret: invalid base64 after %s: %w", StandardWebhooksSecretPrefix, err)
			}
			if len(b) == 0 {
				return nil, errors.New("signature: secret: empty")
			}
			return b, nil
		}
	}
	return signature.ParseSecret(s)
}

// Scheme verifies the deliveries of one webhook provider (a preset).
// Providers put no key id on the wire, so every configured key and every
// secret of it is tried; the id of the key that verifies is the principal.
//
// What a verified delivery yields depends on the preset:
//
//	preset             timestamp          replay key         idempotency key
//	standard-webhooks  webhook-timestamp  id + timestamp     webhook-id
//	stripe             t                  the signature      event id of the JSON body
//	github             none               none               X-GitHub-Delivery
//	slack              request timestamp  the signature      none (optional)
//	shopify            none               none               X-Shopify-Webhook-Id
//
// A signature replay key is the MAC under the key's first secret, so it is
// the same whichever of several signatures in the header verified.
//
// No preset signs the request method, and providers deliver with POST
// only: a request with any other method (also "post") is refused with
// ErrMethodNotAllowed before its headers are read.
type Scheme struct {
	preset   string
	keys     []*webhookKey
	nsecrets int
	// scratch holds *whScratch: per-delivery buffers and this verifier's
	// keyed HMAC states, so a verification allocates nothing but its
	// replay key.
	scratch sync.Pool
}

var _ signature.Scheme = (*Scheme)(nil)

type webhookKey struct {
	id      string
	secrets [][]byte
	first   int // index of secrets[0] among all secrets of the verifier
	pub     ed25519.PublicKey
}

// New returns the verifier of preset over keys. Every key needs an
// id and at least one secret; under standard-webhooks a key may instead
// (or also) have an Ed25519 PublicKey for "v1a" signatures.
func New(preset string, keys []signature.Key) (*Scheme, error) {
	known := false
	for _, p := range Presets() {
		known = known || p == preset
	}
	if !known {
		return nil, fmt.Errorf("signature: unknown webhook preset %q", preset)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("signature: %s: no keys configured", preset)
	}
	w := &Scheme{preset: preset}
	seen := map[string]bool{}
	for i, k := range keys {
		if k.ID == "" {
			return nil, fmt.Errorf("signature: %s: keys[%d]: empty id", preset, i)
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("signature: %s: keys[%d]: duplicate id %q", preset, i, k.ID)
		}
		seen[k.ID] = true
		wk := &webhookKey{id: k.ID, first: w.nsecrets}
		for j, sec := range k.Secrets {
			if len(sec) == 0 {
				return nil, fmt.Errorf("signature: %s: key %q: secrets[%d] is empty", preset, k.ID, j)
			}
			wk.secrets = append(wk.secrets, append([]byte(nil), sec...))
		}
		w.nsecrets += len(wk.secrets)
		if k.PublicKey != nil {
			pub, ok := sigutil.Ed25519Public(k.PublicKey)
			if !ok || preset != PresetStandardWebhooks {
				return nil, fmt.Errorf("signature: %s: key %q: public keys are supported by standard-webhooks (Ed25519, v1a) only", preset, k.ID)
			}
			if len(pub) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("signature: %s: key %q: Ed25519 public key of %d bytes, want %d", preset, k.ID, len(pub), ed25519.PublicKeySize)
			}
			wk.pub = append(ed25519.PublicKey(nil), pub...)
		}
		if len(wk.secrets) == 0 && wk.pub == nil {
			return nil, fmt.Errorf("signature: %s: key %q: no secrets", preset, k.ID)
		}
		w.keys = append(w.keys, wk)
	}
	w.scratch.New = func() any {
		return &whScratch{prefix: make([]byte, 0, 128), sum: make([]byte, macSize), sigs: make([]byte, 0, 4*macSize), macs: make([]hash.Hash, w.nsecrets)}
	}
	return w, nil
}

// Preset returns the preset name.
func (w *Scheme) Preset() string { return w.preset }

// whScratch holds the per-delivery buffers of a verification.
type whScratch struct {
	prefix []byte
	sum    []byte
	sigs   []byte      // decoded MAC signatures, macSize bytes each
	asigs  []byte      // decoded Ed25519 signatures
	macs   []hash.Hash // keyed HMAC states, by secret index; nil until used
}

// mac returns the keyed HMAC state of secret j of k, reset.
func (sc *whScratch) mac(k *webhookKey, j int) hash.Hash {
	m := sc.macs[k.first+j]
	if m == nil {
		m = hmac.New(sha256.New, k.secrets[j])
		sc.macs[k.first+j] = m
		return m
	}
	m.Reset()
	return m
}

// Verify implements Scheme. No preset signs the method, so a delivery
// resent with another method would verify: every preset accepts POST, the
// one method providers send, byte for byte, and refuses any other with
// ErrMethodNotAllowed before any signature work.
func (w *Scheme) Verify(_ context.Context, r *signature.Request) (signature.Verified, error) {
	if r.Method != http.MethodPost {
		return signature.Verified{}, signature.POSTOnly("the " + w.preset + " preset")
	}
	sc := w.scratch.Get().(*whScratch)
	sc.prefix, sc.sigs, sc.asigs = sc.prefix[:0], sc.sigs[:0], sc.asigs[:0]
	var v signature.Verified
	var err error
	switch w.preset {
	case PresetStandardWebhooks:
		v, err = w.verifyStandard(sc, r)
	case PresetStripe:
		v, err = w.verifyStripe(sc, r)
	case PresetGitHub:
		v, err = w.verifyBodyMAC(sc, r, GitHubSignatureHeader, GitHubDeliveryHeader)
	case PresetSlack:
		v, err = w.verifySlack(sc, r)
	default:
		v, err = w.verifyBodyMAC(sc, r, ShopifySignatureHeader, ShopifyWebhookIDHeader)
	}
	w.scratch.Put(sc)
	return v, err
}

// webhookNow is the default clock of WebhookSigner.
func webhookNow() time.Time { return time.Now() }
