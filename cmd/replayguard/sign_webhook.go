package main

import (
	"crypto/ed25519"
	"fmt"

	"github.com/google/uuid"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/signature/webhooksig"
)

// webhookSigner returns the signer of a webhook preset: a delivery signed
// as the provider signs it, with a fresh delivery id where the provider
// sends one (--delivery-id chooses it).
func (f *signFlags) webhookSigner(preset string, cfg *replayguard.Config) (*webhooksig.Signer, error) {
	if *f.keyID != "" && cfg == nil {
		return nil, f.c.fail("--key-id names a key of --config: a %s delivery carries no key id", preset)
	}
	s := &webhooksig.Signer{Preset: preset, DeliveryID: *f.deliveryID}
	if s.DeliveryID == "" {
		switch preset {
		case webhooksig.PresetGitHub, webhooksig.PresetShopify:
			// GitHub and Shopify send a bare UUID; the signer's default
			// is Standard Webhooks' "msg_…".
			s.DeliveryID = uuid.NewString()
		}
	}
	if *f.privateKey != "" {
		k, err := readPrivateKey(*f.privateKey)
		if err != nil {
			return nil, fmt.Errorf("sign: --private-key: %w", err)
		}
		ed, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("sign: --private-key: standard-webhooks v1a signatures need an Ed25519 key, got %T", k)
		}
		s.PrivateKey = ed
		return s, nil
	}
	sec, err := keySecret(cfg, preset, *f.keyID, *f.secret)
	if err != nil {
		return nil, err
	}
	s.Secret = sec
	return s, nil
}
