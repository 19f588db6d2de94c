package httpsig

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/internal/sfv"
)

// ContentDigestHeader is the RFC 9530 field carrying a digest of the
// message content.
const ContentDigestHeader = "Content-Digest"

// Digest algorithms of RFC 9530 that Content-Digest is checked with.
const (
	DigestSHA256 = "sha-256"
	DigestSHA512 = "sha-512"
)

// Content-Digest errors.
var (
	// ErrDigestMismatch reports a Content-Digest that does not match the body.
	ErrDigestMismatch = errors.New("signature: content-digest does not match the body")
	// ErrDigestUnsupported reports a Content-Digest with neither sha-256
	// nor sha-512.
	ErrDigestUnsupported = errors.New("signature: content-digest has no sha-256 or sha-512 member")
)

// ContentDigest returns the Content-Digest field value of body with the
// named algorithm ("sha-256" or "sha-512").
func ContentDigest(alg string, body []byte) (string, error) {
	sum, err := digestOf(alg, body)
	if err != nil {
		return "", err
	}
	return sfv.MarshalDictionary(sfv.Dictionary{{Key: alg, Value: sfv.ItemMember(sfv.Item{Value: sfv.ByteSequence(sum)})}})
}

func digestOf(alg string, body []byte) ([]byte, error) {
	switch alg {
	case DigestSHA256:
		s := sha256.Sum256(body)
		return s[:], nil
	case DigestSHA512:
		s := sha512.Sum512(body)
		return s[:], nil
	}
	return nil, fmt.Errorf("signature: unsupported digest algorithm %q", alg)
}

// CheckContentDigest verifies the Content-Digest field lines against body:
// the sha-256 member, or the sha-512 member when there is no sha-256 one,
// must match. Members with other algorithms are ignored, and at least one
// known member is required. One digest is computed, whatever the field
// holds: either binds the body, and a request the field names more
// algorithms for costs no more than one naming one. Errors wrap
// ErrMalformed, ErrDigestUnsupported or ErrDigestMismatch.
func CheckContentDigest(lines []string, body []byte) error {
	d, err := sfv.ParseDictionary(strings.Join(lines, ","))
	if err != nil {
		return fmt.Errorf("%w: content-digest: %w", signature.ErrMalformed, err)
	}
	var chosen *sfv.DictMember
	for i := range d {
		m := &d[i]
		if m.Key != DigestSHA256 && m.Key != DigestSHA512 {
			continue
		}
		if m.Value.IsInnerList || m.Value.Item.Value.Type != sfv.TypeByteSequence {
			return fmt.Errorf("%w: content-digest: %s is not a byte sequence", signature.ErrMalformed, m.Key)
		}
		if chosen == nil || m.Key == DigestSHA256 {
			chosen = m
		}
	}
	if chosen == nil {
		return fmt.Errorf("%w: %w", signature.ErrInvalid, ErrDigestUnsupported)
	}
	want, _ := digestOf(chosen.Key, body)
	if subtle.ConstantTimeCompare(want, chosen.Value.Item.Value.Bytes) != 1 {
		return fmt.Errorf("%w: %w (%s)", signature.ErrInvalid, ErrDigestMismatch, chosen.Key)
	}
	return nil
}
