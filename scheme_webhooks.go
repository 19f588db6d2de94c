package replayguard

import (
	"time"

	"crypto/ed25519"
	"fmt"
	"strings"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/httpsig"
	"github.com/replayguard/replayguard/signature/webhooksig"
)

// webhookScheme is the scheme of a webhook preset.
func webhookScheme(preset string) schemeDef {
	return schemeDef{
		validate: func(c Config) []error { return validateWebhook(preset, c) },
		build: func(c Config, _ []signature.Key, _ func() time.Time) (signature.Scheme, error) {
			keys, errs := webhookKeys(preset, c)
			if len(errs) > 0 {
				return nil, errs[0]
			}
			return webhooksig.New(preset, keys)
		},
	}
}

// dedupeOnly reports the presets whose provider signs no timestamp: their
// deliveries are protected by the idempotency record alone.
// DedupeOnly reports whether c's scheme signs no timestamp (the github and
// shopify presets): only the idempotency record stops a replayed delivery,
// so the scheme needs the dedupe step, which a forward-auth endpoint
// cannot run.
func (c Config) DedupeOnly() bool { return dedupeOnly(c.Scheme) }

func dedupeOnly(preset string) bool {
	return preset == webhooksig.PresetGitHub || preset == webhooksig.PresetShopify
}

func validateWebhook(preset string, c Config) []error {
	_, errs := webhookKeys(preset, c)
	id := c.Idempotency
	if dedupeOnly(preset) {
		if id.Enabled != nil && !*id.Enabled {
			errs = append(errs, fieldErr("idempotency.enabled", "the %s preset signs no timestamp; deliveries are deduplicated by their id, which needs idempotency", preset))
		} else if id.Methods != nil && !containsFold(id.Methods, "POST") {
			errs = append(errs, fieldErr("idempotency.methods", "the %s preset deduplicates POST deliveries; include POST", preset))
		}
	}
	return errs
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// webhookKeys converts the configured keys for a preset: secrets as the
// preset reads them (standard-webhooks decodes "whsec_" and takes "whpk_"
// as an Ed25519 public key), and for standard-webhooks an Ed25519
// public_key_file or jwk. Every problem is returned, naming its field.
func webhookKeys(preset string, c Config) ([]signature.Key, []error) {
	var errs []error
	keys := make([]signature.Key, 0, len(c.Keys))
	for i, kc := range c.Keys {
		field := fmt.Sprintf("keys[%d]", i)
		k := signature.Key{ID: kc.ID}
		for j, s := range kc.Secrets {
			sf := fmt.Sprintf("%s.secrets[%d]", field, j)
			if preset == webhooksig.PresetStandardWebhooks && strings.HasPrefix(s, webhooksig.StandardWebhooksPublicKeyPrefix) {
				pub, err := webhooksig.ParseStandardWebhooksPublicKey(s)
				switch {
				case err != nil:
					errs = append(errs, wrapField(sf, err))
				case k.PublicKey != nil:
					errs = append(errs, fieldErr(sf, "key %q has a public key already; configure another key", kc.ID))
				default:
					k.PublicKey = pub
				}
				continue
			}
			b, err := webhooksig.ParseSecret(preset, s)
			if err != nil {
				errs = append(errs, wrapField(sf, err))
				continue
			}
			if err := checkSecretLength(preset, sf, b); err != nil {
				errs = append(errs, err)
				continue
			}
			k.Secrets = append(k.Secrets, b)
		}
		hasPub := kc.PublicKeyFile != "" || len(kc.JWK) > 0
		if kc.Algorithm != "" {
			alg, _ := httpsig.Algorithm(kc.Algorithm)
			ok := alg == httpsig.AlgHMACSHA256 || (preset == webhooksig.PresetStandardWebhooks && alg == httpsig.AlgEd25519)
			if !ok {
				errs = append(errs, fieldErr(field+".algorithm", "the %s preset verifies %s, not %q", preset, webhookAlgorithms(preset), kc.Algorithm))
			}
		}
		if hasPub {
			if preset != webhooksig.PresetStandardWebhooks {
				errs = append(errs, fieldErr(field+".public_key_file", "the %s preset verifies HMAC-SHA256 secrets only", preset))
			} else if k.PublicKey != nil {
				errs = append(errs, fieldErr(field+".public_key_file", "key %q has a whpk_ public key already", kc.ID))
			} else if pub, err := configPublicKey(kc, field); err != nil {
				errs = append(errs, err)
			} else if ed, ok := ed25519Key(pub); ok {
				k.PublicKey = ed
			} else {
				errs = append(errs, fieldErr(field+".public_key_file", "standard-webhooks v1a signatures need an Ed25519 key, got %T", pub))
			}
		}
		if len(k.Secrets) == 0 && k.PublicKey == nil && !hasPub {
			errs = append(errs, fieldErr(field+".secrets", "the %s preset needs at least one secret for key %q", preset, kc.ID))
		}
		keys = append(keys, k)
	}
	return keys, errs
}

func webhookAlgorithms(preset string) string {
	if preset == webhooksig.PresetStandardWebhooks {
		return "HMAC-SHA256 (v1) and Ed25519 (v1a)"
	}
	return "HMAC-SHA256"
}

// ed25519Key returns pub as an Ed25519 public key. A type switch rather
// than an assertion: under Yaegi, which runs the Traefik plugin,
// pub.(ed25519.PublicKey) also succeeds on a []byte.
func ed25519Key(pub any) (ed25519.PublicKey, bool) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return k, true
	}
	return nil, false
}
