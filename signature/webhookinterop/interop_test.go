package webhookinterop_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v85/webhook"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/webhooksig"
)

func verify(t *testing.T, preset, secret string, h http.Header, body []byte) (signature.Verified, error) {
	t.Helper()
	key, err := webhooksig.ParseSecret(preset, secret)
	require.NoError(t, err)
	w, err := webhooksig.New(preset, []signature.Key{{ID: "endpoint", Secrets: [][]byte{key}}})
	require.NoError(t, err)
	return w.Verify(context.Background(), &signature.Request{Method: http.MethodPost, Header: h, Body: body})
}

// Deliveries signed by the Standard Webhooks Go library verify with the
// standard-webhooks preset (under webhook-* and Svix's svix-* names), and
// what WebhookSigner signs, the library verifies.
func TestStandardWebhooksLibrary(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	lib, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	now := time.Now().Truncate(time.Second)
	for _, body := range [][]byte{[]byte(`{"type":"invoice.paid"}`), {}, make([]byte, 70000)} {
		sig, err := lib.Sign("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", now, body)
		require.NoError(t, err)
		for _, prefix := range []string{"webhook-", "svix-"} {
			h := http.Header{}
			h.Set(prefix+"id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W")
			h.Set(prefix+"timestamp", strconv.FormatInt(now.Unix(), 10))
			h.Set(prefix+"signature", "v1,bm90LXRoZS1zaWduYXR1cmUtb2YtYW55LWtleS0wMDA= "+sig)
			v, err := verify(t, webhooksig.PresetStandardWebhooks, secret, h, body)
			require.NoError(t, err)
			assert.Equal(t, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", v.IdempotencyKey)
			assert.Equal(t, now, v.Timestamp)
			if prefix == "webhook-" {
				require.NoError(t, lib.Verify(body, h), "the library accepts the same delivery")
			}
		}
	}

	key, err := webhooksig.ParseSecret(webhooksig.PresetStandardWebhooks, secret)
	require.NoError(t, err)
	req, _ := http.NewRequest(http.MethodPost, "https://hooks.example.com/", nil)
	body := []byte(`{"type":"contact.created"}`)
	require.NoError(t, (&webhooksig.Signer{Preset: webhooksig.PresetStandardWebhooks, Secret: key}).Sign(req, body))
	require.NoError(t, lib.Verify(body, req.Header), "the library accepts what WebhookSigner signs")

	h := req.Header.Clone()
	_, err = verify(t, webhooksig.PresetStandardWebhooks, "whsec_"+"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", h, body)
	require.ErrorIs(t, err, signature.ErrInvalid)
}

// Payloads signed by stripe-go's test helper (GenerateTestSignedPayload)
// verify with the stripe preset, whose secret is the whsec_ string itself.
func TestStripeGoTestHelper(t *testing.T) {
	const secret = "whsec_test_6f1b0c4a7e2d9a3b"
	body := []byte(`{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","api_version":"2024-06-20","type":"payment_intent.succeeded"}`)
	now := time.Now().Truncate(time.Second)
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: now})
	h := http.Header{}
	h.Set("Stripe-Signature", signed.Header)
	v, err := verify(t, webhooksig.PresetStripe, secret, h, body)
	require.NoError(t, err)
	assert.Equal(t, "evt_1NG8Du2eZvKYlo2CUI79vXWy", v.IdempotencyKey)
	assert.Equal(t, now, v.Timestamp)
	require.NoError(t, webhook.ValidatePayload(body, signed.Header, secret), "stripe-go accepts it too")

	req, _ := http.NewRequest(http.MethodPost, "https://hooks.example.com/", nil)
	require.NoError(t, (&webhooksig.Signer{Preset: webhooksig.PresetStripe, Secret: []byte(secret)}).Sign(req, body))
	require.NoError(t, webhook.ValidatePayload(body, req.Header.Get("Stripe-Signature"), secret), "stripe-go accepts what WebhookSigner signs")

	other := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: "whsec_other", Timestamp: now})
	h.Set("Stripe-Signature", other.Header)
	_, err = verify(t, webhooksig.PresetStripe, secret, h, body)
	require.ErrorIs(t, err, signature.ErrInvalid)
}
