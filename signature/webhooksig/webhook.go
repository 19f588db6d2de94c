package webhooksig

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/internal/sigutil"
	"github.com/replayguard/replayguard/timestamp"
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

// ParseStandardWebhooksPublicKey decodes a "whpk_" Ed25519 public key of
// the Standard Webhooks specification.
func ParseStandardWebhooksPublicKey(s string) (ed25519.PublicKey, error) {
	rest, ok := strings.CutPrefix(s, StandardWebhooksPublicKeyPrefix)
	if !ok {
		return nil, fmt.Errorf("signature: public key: want the %s prefix", StandardWebhooksPublicKeyPrefix)
	}
	b, err := decodeLenientBase64(rest)
	if err != nil {
		return nil, fmt.Errorf("signature: public key: invalid base64: %w", err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("signature: public key: %d bytes, want %d", len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

func decodeLenientBase64(s string) ([]byte, error) {
	if strings.HasSuffix(s, "=") {
		return base64.StdEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
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

func (w *Scheme) verifyStandard(sc *whScratch, r *signature.Request) (signature.Verified, error) {
	idH, tsH, sigH := StandardWebhookIDHeader, StandardWebhookTimestampHeader, StandardWebhookSignatureHeader
	lines := r.Header[sigH]
	if len(lines) == 0 {
		if svix := r.Header[SvixSignatureHeader]; len(svix) > 0 {
			idH, tsH, sigH, lines = SvixIDHeader, SvixTimestampHeader, SvixSignatureHeader, svix
		}
	}
	if firstValue(lines) == "" {
		return signature.Verified{}, fmt.Errorf("%w: %s header", signature.ErrMissing, sigH)
	}
	id := firstValue(r.Header[idH])
	if id == "" {
		return signature.Verified{}, fmt.Errorf("%w: %s header", signature.ErrMissing, idH)
	}
	if !validStandardID(id) {
		return signature.Verified{}, fmt.Errorf("%w: %s must be 1-%d printable characters without '.'", signature.ErrMalformed, idH, maxDeliveryID)
	}
	tsRaw := firstValue(r.Header[tsH])
	if tsRaw == "" {
		return signature.Verified{}, fmt.Errorf("%w: %s header", timestamp.ErrMissing, tsH)
	}
	ts, err := timestamp.ParseUnix(tsRaw)
	if err != nil {
		return signature.Verified{}, err
	}
	n, na, malformed, over, err := parseStandardSignatures(sc, lines)
	if err != nil {
		return signature.Verified{}, err
	}
	if n > 0 && w.nsecrets > 0 && na > 1 {
		na, over = 1, true
	}
	if n == 0 && na == 0 {
		if malformed {
			return signature.Verified{}, fmt.Errorf("%w: no decodable v1 or v1a signature in %s", signature.ErrMalformed, sigH)
		}
		return signature.Verified{}, fmt.Errorf("%w: no v1 or v1a signature in %s", signature.ErrMissing, sigH)
	}
	sc.prefix = append(sc.prefix, id...)
	sc.prefix = append(sc.prefix, '.')
	sc.prefix = append(sc.prefix, tsRaw...)
	sc.prefix = append(sc.prefix, '.')
	key := w.matchMAC(sc, n, r.Body)
	if key == nil && na > 0 {
		key = w.matchEd25519(sc, na, r.Body)
	}
	if key == nil {
		if over {
			return signature.Verified{}, fmt.Errorf("%w: more v1a signatures in %s than are tried (%d, or 1 beside v1 signatures), and none tried verified", signature.ErrMalformed, sigH, MaxEd25519Signatures)
		}
		if malformed {
			return signature.Verified{}, fmt.Errorf("%w: a signature in %s could not be decoded", signature.ErrMalformed, sigH)
		}
		return signature.Verified{}, signature.ErrInvalid
	}
	return signature.Verified{KeyID: key.id, Timestamp: ts, ReplayKey: id + ":" + tsRaw, IdempotencyKey: id}, nil
}

// parseStandardSignatures decodes the space-delimited "v1,<base64>" and
// "v1a,<base64>" entries, the latter up to MaxEd25519Signatures; over
// reports v1a entries past the cap. Other entries are ignored.
func parseStandardSignatures(sc *whScratch, lines []string) (n, na int, malformed, over bool, err error) {
	total := 0
	for _, line := range lines {
		total += len(line)
		if total > maxWebhookHeader {
			return 0, 0, false, false, fmt.Errorf("%w: signature header longer than %d bytes", signature.ErrMalformed, maxWebhookHeader)
		}
		for line != "" {
			var entry string
			if i := strings.IndexByte(line, ' '); i >= 0 {
				entry, line = line[:i], line[i+1:]
			} else {
				entry, line = line, ""
			}
			switch {
			case strings.HasPrefix(entry, "v1,"):
				off := len(sc.sigs)
				sc.sigs = append(sc.sigs, make([]byte, macSize)...)
				if !decodeStdBase64(sc.sigs[off:], entry[3:]) {
					sc.sigs = sc.sigs[:off]
					malformed = true
					continue
				}
				n++
			case strings.HasPrefix(entry, "v1a,"):
				if na == MaxEd25519Signatures {
					over = true
					continue
				}
				off := len(sc.asigs)
				sc.asigs = append(sc.asigs, make([]byte, ed25519.SignatureSize)...)
				if !decodeStdBase64(sc.asigs[off:], entry[4:]) {
					sc.asigs = sc.asigs[:off]
					malformed = true
					continue
				}
				na++
			}
		}
	}
	return n, na, malformed, over, nil
}

func (w *Scheme) verifyStripe(sc *whScratch, r *signature.Request) (signature.Verified, error) {
	header := firstValue(r.Header[StripeSignatureHeader])
	if header == "" {
		return signature.Verified{}, fmt.Errorf("%w: %s header", signature.ErrMissing, StripeSignatureHeader)
	}
	if len(header) > maxWebhookHeader {
		return signature.Verified{}, fmt.Errorf("%w: %s longer than %d bytes", signature.ErrMalformed, StripeSignatureHeader, maxWebhookHeader)
	}
	tsRaw, n, malformed := "", 0, false
	for rest := header; rest != ""; {
		var pair string
		if i := strings.IndexByte(rest, ','); i >= 0 {
			pair, rest = rest[:i], rest[i+1:]
		} else {
			pair, rest = rest, ""
		}
		k, v, _ := strings.Cut(pair, "=")
		switch k {
		case "t":
			tsRaw = v
		case "v1":
			if !appendHexMAC(sc, v) {
				malformed = true
				continue
			}
			n++
		}
	}
	if tsRaw == "" {
		return signature.Verified{}, fmt.Errorf("%w: t in %s", timestamp.ErrMissing, StripeSignatureHeader)
	}
	ts, err := timestamp.ParseUnix(tsRaw)
	if err != nil {
		return signature.Verified{}, err
	}
	if n == 0 {
		if malformed {
			return signature.Verified{}, fmt.Errorf("%w: no decodable v1 signature in %s", signature.ErrMalformed, StripeSignatureHeader)
		}
		return signature.Verified{}, fmt.Errorf("%w: no v1 signature in %s", signature.ErrMissing, StripeSignatureHeader)
	}
	sc.prefix = append(sc.prefix, tsRaw...)
	sc.prefix = append(sc.prefix, '.')
	key := w.matchMAC(sc, n, r.Body)
	if key == nil {
		if malformed {
			return signature.Verified{}, fmt.Errorf("%w: a v1 signature in %s could not be decoded", signature.ErrMalformed, StripeSignatureHeader)
		}
		return signature.Verified{}, signature.ErrInvalid
	}
	v := signature.Verified{KeyID: key.id, Timestamp: ts, ReplayKey: "sig:" + hex.EncodeToString(sc.sum)}
	id, err := stripeEventID(r.Body)
	if err != nil {
		return signature.Verified{}, err
	}
	v.IdempotencyKey = id
	v.IdempotencyOptional = id == ""
	return v, nil
}

// stripeEventID returns the top-level "id" of a Stripe event body, or ""
// when the body is not a JSON object with a string id. It reads only up to
// that member (Stripe sends it first); the body is already authenticated.
func stripeEventID(body []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", nil
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", nil
		}
		key, _ := tok.(string)
		if key != "id" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return "", nil
			}
			continue
		}
		val, err := dec.Token()
		if err != nil {
			return "", nil
		}
		id, ok := val.(string)
		if !ok || id == "" {
			return "", nil
		}
		if !validDeliveryID(id) {
			return "", fmt.Errorf("%w: event id must be 1-%d printable characters", signature.ErrMalformed, maxDeliveryID)
		}
		return id, nil
	}
	return "", nil
}

func (w *Scheme) verifySlack(sc *whScratch, r *signature.Request) (signature.Verified, error) {
	sig := firstValue(r.Header[SlackSignatureHeader])
	if sig == "" {
		return signature.Verified{}, fmt.Errorf("%w: %s header", signature.ErrMissing, SlackSignatureHeader)
	}
	tsRaw := firstValue(r.Header[SlackTimestampHeader])
	if tsRaw == "" {
		return signature.Verified{}, fmt.Errorf("%w: %s header", timestamp.ErrMissing, SlackTimestampHeader)
	}
	ts, err := timestamp.ParseUnix(tsRaw)
	if err != nil {
		return signature.Verified{}, err
	}
	v, ok := strings.CutPrefix(sig, "v0=")
	if !ok {
		return signature.Verified{}, fmt.Errorf("%w: %s has no v0= signature", signature.ErrMissing, SlackSignatureHeader)
	}
	if !appendHexMAC(sc, v) {
		return signature.Verified{}, fmt.Errorf("%w: %s is not v0=<64 hex digits>", signature.ErrMalformed, SlackSignatureHeader)
	}
	sc.prefix = append(sc.prefix, "v0:"...)
	sc.prefix = append(sc.prefix, tsRaw...)
	sc.prefix = append(sc.prefix, ':')
	key := w.matchMAC(sc, 1, r.Body)
	if key == nil {
		return signature.Verified{}, signature.ErrInvalid
	}
	return signature.Verified{KeyID: key.id, Timestamp: ts, ReplayKey: "sig:" + hex.EncodeToString(sc.sum), IdempotencyOptional: true}, nil
}

// verifyBodyMAC verifies the presets that sign the body alone (GitHub:
// "sha256=<hex>", Shopify: base64) and take the delivery id from idHeader.
func (w *Scheme) verifyBodyMAC(sc *whScratch, r *signature.Request, sigHeader, idHeader string) (signature.Verified, error) {
	sig := firstValue(r.Header[sigHeader])
	if sig == "" {
		return signature.Verified{}, fmt.Errorf("%w: %s header", signature.ErrMissing, sigHeader)
	}
	id := firstValue(r.Header[idHeader])
	if id == "" {
		return signature.Verified{}, fmt.Errorf("%w: %s header (deliveries are deduplicated by it)", signature.ErrMissing, idHeader)
	}
	if !validDeliveryID(id) {
		return signature.Verified{}, fmt.Errorf("%w: %s must be 1-%d printable characters", signature.ErrMalformed, idHeader, maxDeliveryID)
	}
	if w.preset == PresetGitHub {
		v, ok := strings.CutPrefix(sig, "sha256=")
		if !ok || !appendHexMAC(sc, v) {
			return signature.Verified{}, fmt.Errorf("%w: %s is not sha256=<64 hex digits>", signature.ErrMalformed, sigHeader)
		}
	} else {
		sc.sigs = append(sc.sigs, make([]byte, macSize)...)
		if !decodeStdBase64(sc.sigs, sig) {
			return signature.Verified{}, fmt.Errorf("%w: %s is not base64 of 32 bytes", signature.ErrMalformed, sigHeader)
		}
	}
	key := w.matchMAC(sc, 1, r.Body)
	if key == nil {
		return signature.Verified{}, signature.ErrInvalid
	}
	return signature.Verified{KeyID: key.id, IdempotencyKey: id}, nil
}

// matchMAC computes HMAC-SHA256(prefix || body) under every secret of
// every key until one equals one of the n decoded signatures: one MAC per
// secret, however many signatures the header holds. It returns the
// matching key and leaves in sc.sum the MAC under that key's first secret.
func (w *Scheme) matchMAC(sc *whScratch, n int, body []byte) *webhookKey {
	if n == 0 {
		return nil
	}
	for _, k := range w.keys {
		for j := range k.secrets {
			m := sc.mac(k, j)
			m.Write(sc.prefix)
			m.Write(body)
			sc.sum = m.Sum(sc.sum[:0])
			for i := 0; i < n; i++ {
				if hmac.Equal(sc.sigs[i*macSize:(i+1)*macSize], sc.sum) {
					if j > 0 {
						m := sc.mac(k, 0)
						m.Write(sc.prefix)
						m.Write(body)
						sc.sum = m.Sum(sc.sum[:0])
					}
					return k
				}
			}
		}
	}
	return nil
}

// matchEd25519 verifies the na (at most MaxEd25519Signatures) decoded v1a
// signatures over prefix || body with the keys that have an Ed25519 public
// key.
func (w *Scheme) matchEd25519(sc *whScratch, na int, body []byte) *webhookKey {
	var msg []byte
	for _, k := range w.keys {
		if k.pub == nil {
			continue
		}
		if msg == nil {
			msg = make([]byte, 0, len(sc.prefix)+len(body))
			msg = append(append(msg, sc.prefix...), body...)
		}
		for i := 0; i < na; i++ {
			if ed25519.Verify(k.pub, msg, sc.asigs[i*ed25519.SignatureSize:(i+1)*ed25519.SignatureSize]) {
				return k
			}
		}
	}
	return nil
}

// appendHexMAC decodes 64 hex digits into the next MAC slot of sc.
func appendHexMAC(sc *whScratch, s string) bool {
	if len(s) != 2*macSize {
		return false
	}
	off := len(sc.sigs)
	sc.sigs = append(sc.sigs, make([]byte, macSize)...)
	for i := 0; i < macSize; i++ {
		hi, lo := s[2*i], s[2*i+1]
		if !sigutil.IsHex(hi) || !sigutil.IsHex(lo) {
			sc.sigs = sc.sigs[:off]
			return false
		}
		sc.sigs[off+i] = sigutil.Unhex(hi)<<4 | sigutil.Unhex(lo)
	}
	return true
}

// decodeStdBase64 decodes padded standard base64 of exactly len(dst)
// bytes without allocating.
func decodeStdBase64(dst []byte, s string) bool {
	n := len(s)
	if len(dst) == 0 || n != base64.StdEncoding.EncodedLen(len(dst)) {
		return false
	}
	o := 0
	for i := 0; i < n-4; i += 4 {
		a, b, c, d := b64Values[s[i]], b64Values[s[i+1]], b64Values[s[i+2]], b64Values[s[i+3]]
		if a|b|c|d > 63 {
			return false
		}
		dst[o] = a<<2 | b>>4
		dst[o+1] = b<<4 | c>>2
		dst[o+2] = c<<6 | d
		o += 3
	}
	a, b := b64Values[s[n-4]], b64Values[s[n-3]]
	if a|b > 63 {
		return false
	}
	dst[o] = a<<2 | b>>4
	o++
	switch len(dst) - o {
	case 0:
		return s[n-2] == '=' && s[n-1] == '='
	case 1:
		c := b64Values[s[n-2]]
		if c > 63 || s[n-1] != '=' {
			return false
		}
		dst[o] = b<<4 | c>>2
		return true
	}
	c, d := b64Values[s[n-2]], b64Values[s[n-1]]
	if c|d > 63 {
		return false
	}
	dst[o] = b<<4 | c>>2
	dst[o+1] = c<<6 | d
	return true
}

// b64Values maps each byte to its standard base64 value, 0xff outside the
// alphabet.
var b64Values = func() [256]byte {
	var t [256]byte
	for i := range t {
		t[i] = 0xff
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// validStandardID reports whether id is a valid delivery id without '.',
// the separator of the signed content.
func validStandardID(id string) bool {
	if id == "" || len(id) > maxDeliveryID {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x20 || c > 0x7e || c == '.' {
			return false
		}
	}
	return true
}

// validDeliveryID reports whether id can serve as an idempotency key:
// 1-255 printable ASCII characters.
func validDeliveryID(id string) bool {
	if id == "" || len(id) > maxDeliveryID {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// webhookNow is the default clock of WebhookSigner.
func webhookNow() time.Time { return time.Now() }

func firstValue(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}
