package webhooksig

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/timestamp"
)

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
