package replayguard

import (
	"fmt"
	"time"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/hmacsig"
)

func validateHMAC(c Config) []error {
	var errs []error
	for i, k := range c.Keys {
		if len(k.Secrets) == 0 {
			errs = append(errs, fieldErr(fmt.Sprintf("keys[%d].secrets", i), "the hmac scheme needs at least one secret for key %q", k.ID))
		}
	}
	return errs
}

func buildHMAC(c Config, keys []signature.Key, _ func() time.Time) (signature.Scheme, error) {
	return hmacsig.New(keys, hmacsig.WithHeaders(hmacsig.Headers{
		KeyID: c.HMAC.KeyIDHeader, Timestamp: c.HMAC.TimestampHeader,
		Nonce: c.HMAC.NonceHeader, Signature: c.HMAC.SignatureHeader,
	}))
}
