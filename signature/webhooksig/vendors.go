package webhooksig

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/timestamp"
)

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
