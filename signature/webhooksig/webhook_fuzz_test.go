package webhooksig_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/webhooksig"
)

// fuzzWebhookSecret is the one secret of every preset under fuzzing.
var fuzzWebhookSecret = []byte("fuzz-webhook-secret")

// webhookMAC is the MAC encoding each preset sends for the content it signs.
func webhookMAC(preset, id, ts, body string) string {
	switch preset {
	case webhooksig.PresetStandardWebhooks:
		return base64.StdEncoding.EncodeToString(hmacSHA256(fuzzWebhookSecret, []byte(id+"."+ts+"."+body)))
	case webhooksig.PresetStripe:
		return hex.EncodeToString(hmacSHA256(fuzzWebhookSecret, []byte(ts+"."+body)))
	case webhooksig.PresetSlack:
		return hex.EncodeToString(hmacSHA256(fuzzWebhookSecret, []byte("v0:"+ts+":"+body)))
	case webhooksig.PresetGitHub:
		return hex.EncodeToString(hmacSHA256(fuzzWebhookSecret, []byte(body)))
	}
	return base64.StdEncoding.EncodeToString(hmacSHA256(fuzzWebhookSecret, []byte(body)))
}

// FuzzWebhookVerify sends arbitrary headers and bodies to every preset.
// "{mac}" in the signature value is replaced by the correct MAC of the
// delivery, so accepting paths are reached; a delivery that verifies must
// carry that MAC, and a verified delivery's keys follow the preset's table.
func FuzzWebhookVerify(f *testing.F) {
	f.Add(uint8(0), "v1,{mac} v1a,AAAA", "msg_1", "1700000000", `{"id":"evt_1"}`)
	f.Add(uint8(1), "t=1700000000,v1={mac},v0=ab", "", "1700000000", `{"id":"evt_1","object":"event"}`)
	f.Add(uint8(2), "sha256={mac}", "72d3162e-cc78-11e3-81ab-4c9367dc0958", "", "Hello, World!")
	f.Add(uint8(3), "v0={mac}", "", "1531420618", "token=x&team_id=T1")
	f.Add(uint8(4), "{mac}", "b54557e4", "", `{"id":1}`)
	presets := webhooksig.Presets()
	schemes := make([]*webhooksig.Scheme, len(presets))
	for i, p := range presets {
		w, err := webhooksig.New(p, []signature.Key{{ID: "other", Secrets: [][]byte{[]byte("x")}}, {ID: "k", Secrets: [][]byte{fuzzWebhookSecret}, PublicKey: pubIf(p)}})
		if err != nil {
			f.Fatal(err)
		}
		schemes[i] = w
	}
	f.Fuzz(func(t *testing.T, which uint8, sig, id, ts, body string) {
		i := int(which) % len(presets)
		preset := presets[i]
		mac := webhookMAC(preset, id, ts, body)
		sig = strings.ReplaceAll(sig, "{mac}", mac)
		h := http.Header{}
		switch preset {
		case webhooksig.PresetStandardWebhooks:
			h.Set("webhook-signature", sig)
			h.Set("webhook-id", id)
			h.Set("webhook-timestamp", ts)
		case webhooksig.PresetStripe:
			h.Set("Stripe-Signature", sig)
		case webhooksig.PresetGitHub:
			h.Set("X-Hub-Signature-256", sig)
			h.Set("X-GitHub-Delivery", id)
		case webhooksig.PresetSlack:
			h.Set("X-Slack-Signature", sig)
			h.Set("X-Slack-Request-Timestamp", ts)
		default:
			h.Set("X-Shopify-Hmac-Sha256", sig)
			h.Set("X-Shopify-Webhook-Id", id)
		}
		v, err := schemes[i].Verify(context.Background(), &signature.Request{Method: http.MethodPost, Header: h, Body: []byte(body)})
		if err != nil {
			return
		}
		if !strings.Contains(sig, mac) || v.KeyID != "k" {
			t.Fatalf("%s verified %q without its MAC %q: %+v", preset, sig, mac, v)
		}
		switch preset {
		case webhooksig.PresetStandardWebhooks:
			if v.IdempotencyKey != id || v.ReplayKey != id+":"+ts || v.Timestamp.IsZero() {
				t.Fatalf("standard-webhooks keys: %+v", v)
			}
		case webhooksig.PresetGitHub, webhooksig.PresetShopify:
			if v.IdempotencyKey != id || v.ReplayKey != "" || !v.Timestamp.IsZero() {
				t.Fatalf("%s keys: %+v", preset, v)
			}
		default:
			if v.ReplayKey != "sig:"+hex.EncodeToString(hmacSHA256(fuzzWebhookSecret, signedContent(preset, ts, body))) {
				t.Fatalf("%s replay key %q", preset, v.ReplayKey)
			}
		}
	})
}

func signedContent(preset, ts, body string) []byte {
	if preset == webhooksig.PresetSlack {
		return []byte("v0:" + ts + ":" + body)
	}
	return []byte(ts + "." + body)
}

func pubIf(preset string) any {
	if preset != webhooksig.PresetStandardWebhooks {
		return nil
	}
	return ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public()
}
