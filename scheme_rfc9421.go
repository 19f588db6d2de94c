package replayguard

import (
	"time"

	"crypto"
	"fmt"
	"os"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/httpsig"
)

func validateRFC9421(c Config) []error {
	var errs []error
	for i, comp := range c.RFC9421.RequiredComponents {
		if err := checkRequiredComponent(comp); err != nil {
			errs = append(errs, wrapField(fmt.Sprintf("rfc9421.required_components[%d]", i), err))
		}
	}
	for i := range c.Keys {
		if _, err := rfc9421Key(c, i, nil); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// checkRequiredComponent reports whether comp can be required of a
// signature: a known derived component or a field name.
func checkRequiredComponent(comp string) error {
	_, err := httpsig.New([]signature.Key{{ID: "probe", Secrets: [][]byte{{1}}}}, httpsig.WithRequiredComponents([]string{comp}))
	return err
}

func buildRFC9421(c Config, keys []signature.Key, now func() time.Time) (signature.Scheme, error) {
	out := make([]signature.Key, 0, len(c.Keys))
	for i := range c.Keys {
		var parsed *signature.Key
		if i < len(keys) {
			parsed = &keys[i]
		}
		k, err := rfc9421Key(c, i, parsed)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	opts := []httpsig.Option{httpsig.WithClock(now)}
	if c.RFC9421.RequiredComponents != nil {
		opts = append(opts, httpsig.WithRequiredComponents(c.RFC9421.RequiredComponents))
	}
	return httpsig.New(out, opts...)
}

// rfc9421Key returns keys[i] as the rfc9421 scheme uses it: its secrets
// for hmac-sha256, else the public key of public_key_file or jwk, with the
// configured algorithm. Errors name the field. parsed, when given, is the
// key as Config.SignatureKeys converted it.
func rfc9421Key(c Config, i int, parsed *signature.Key) (signature.Key, error) {
	kc := c.Keys[i]
	field := fmt.Sprintf("keys[%d]", i)
	k := signature.Key{ID: kc.ID, Algorithm: kc.Algorithm}
	if parsed != nil {
		k.Secrets = parsed.Secrets
		k.PublicKey = parsed.PublicKey
	} else {
		for j, s := range kc.Secrets {
			b, err := signature.ParseSecret(s)
			if err != nil {
				return k, wrapField(fmt.Sprintf("%s.secrets[%d]", field, j), err)
			}
			k.Secrets = append(k.Secrets, b)
		}
	}
	alg := ""
	if kc.Algorithm != "" {
		a, ok := httpsig.Algorithm(kc.Algorithm)
		if !ok {
			return k, fieldErr(field+".algorithm", "%q is not an rfc9421 algorithm (hmac-sha256, ed25519, ecdsa-p256-sha256, ecdsa-p384-sha384, rsa-pss-sha512, rsa-v1_5-sha256)", kc.Algorithm)
		}
		alg = a
	}
	hasPub := kc.PublicKeyFile != "" || len(kc.JWK) > 0
	switch {
	case kc.PublicKeyFile != "" && len(kc.JWK) > 0:
		return k, fieldErr(field+".jwk", "give public_key_file or jwk, not both")
	case alg == httpsig.AlgHMACSHA256 || (alg == "" && !hasPub):
		if len(k.Secrets) == 0 {
			return k, fieldErr(field+".secrets", "key %q needs a secret (hmac-sha256) or a public key (public_key_file or jwk)", kc.ID)
		}
		k.PublicKey = nil
		return k, nil
	case !hasPub:
		return k, fieldErr(field+".public_key_file", "algorithm %s needs a public key (public_key_file or jwk)", alg)
	}
	if k.PublicKey == nil {
		pub, err := configPublicKey(kc, field)
		if err != nil {
			return k, err
		}
		k.PublicKey = pub
	}
	k.Secrets = nil
	if _, err := httpsig.New([]signature.Key{k}); err != nil {
		return k, wrapField(field+".algorithm", err)
	}
	return k, nil
}

// configPublicKey loads the public key of public_key_file (PEM) or jwk.
func configPublicKey(kc KeyConfig, field string) (crypto.PublicKey, error) {
	if kc.PublicKeyFile != "" {
		b, err := os.ReadFile(kc.PublicKeyFile)
		if err != nil {
			return nil, wrapField(field+".public_key_file", err)
		}
		pub, err := httpsig.PublicKey(b, nil)
		if err != nil {
			return nil, wrapField(field+".public_key_file", err)
		}
		return pub, nil
	}
	pub, err := httpsig.PublicKey(nil, kc.JWK)
	if err != nil {
		return nil, wrapField(field+".jwk", err)
	}
	return pub, nil
}
