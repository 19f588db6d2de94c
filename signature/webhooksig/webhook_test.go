package webhooksig_test

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/webhooksig"
	"github.com/replayguard/replayguard/timestamp"
)

// webhookVector is one published example of testdata/webhooks/vectors.json.
type webhookVector struct {
	Preset         string            `json:"preset"`
	Source         string            `json:"source"`
	Secret         string            `json:"secret"`
	Timestamp      int64             `json:"timestamp"`
	Headers        map[string]string `json:"headers"`
	Body           string            `json:"body"`
	IdempotencyKey string            `json:"idempotency_key"`
	ReplayKey      string            `json:"replay_key"`
}

func loadWebhookVectors(t *testing.T) []webhookVector {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "webhooks", "vectors.json"))
	require.NoError(t, err)
	var vs []webhookVector
	require.NoError(t, json.Unmarshal(b, &vs))
	require.NotEmpty(t, vs)
	return vs
}

func webhookScheme(t *testing.T, preset string, keys ...signature.Key) *webhooksig.Scheme {
	t.Helper()
	w, err := webhooksig.New(preset, keys)
	require.NoError(t, err)
	return w
}

func webhookKey(t *testing.T, preset, id string, secrets ...string) signature.Key {
	t.Helper()
	k := signature.Key{ID: id}
	for _, s := range secrets {
		b, err := webhooksig.ParseSecret(preset, s)
		require.NoError(t, err)
		k.Secrets = append(k.Secrets, b)
	}
	return k
}

func webhookRequest(headers map[string]string, body string) *signature.Request {
	h := http.Header{}
	for k, v := range headers {
		h.Set(k, v)
	}
	return &signature.Request{Method: http.MethodPost, Scheme: "https", Host: "hooks.example.com", Target: "/hooks", Header: h, Body: []byte(body)}
}

// The published examples verify (Standard Webhooks' test vector, GitHub's
// and Slack's documentation examples; see each entry's source), with the
// matching key found among several configured ones.
func TestWebhookPublishedVectors(t *testing.T) {
	for _, v := range loadWebhookVectors(t) {
		t.Run(v.Preset+": "+v.Source, func(t *testing.T) {
			w := webhookScheme(t, v.Preset,
				webhookKey(t, v.Preset, "other", "base64:b3RoZXItc2VjcmV0LWJ5dGVz"),
				webhookKey(t, v.Preset, "provider", v.Secret, "next-secret"))
			got, err := w.Verify(context.Background(), webhookRequest(v.Headers, v.Body))
			require.NoError(t, err)
			assert.Equal(t, "provider", got.KeyID)
			assert.Equal(t, "provider", got.KeyID)
			assert.Equal(t, v.IdempotencyKey, got.IdempotencyKey)
			assert.Equal(t, v.ReplayKey, got.ReplayKey)
			if v.Timestamp == 0 {
				assert.True(t, got.Timestamp.IsZero())
			} else {
				assert.Equal(t, time.Unix(v.Timestamp, 0), got.Timestamp)
			}
			assert.Equal(t, v.Preset == webhooksig.PresetSlack, got.IdempotencyOptional)

			tampered := webhookRequest(v.Headers, v.Body+" ")
			_, err = w.Verify(context.Background(), tampered)
			require.ErrorIs(t, err, signature.ErrInvalid)
		})
	}
}

// WebhookSigner reproduces the published signatures.
func TestWebhookSignerReproducesVectors(t *testing.T) {
	for _, v := range loadWebhookVectors(t) {
		t.Run(v.Preset+": "+v.Source, func(t *testing.T) {
			secret, err := webhooksig.ParseSecret(v.Preset, v.Secret)
			require.NoError(t, err)
			id := v.IdempotencyKey
			s := &webhooksig.Signer{Preset: v.Preset, Secret: secret, DeliveryID: id, Now: func() time.Time { return time.Unix(v.Timestamp, 0) }}
			req, err := http.NewRequest(http.MethodPost, "https://hooks.example.com/hooks", strings.NewReader(v.Body))
			require.NoError(t, err)
			require.NoError(t, s.Sign(req, []byte(v.Body)))
			for name, want := range v.Headers {
				if strings.HasPrefix(name, "svix-") {
					continue
				}
				assert.Equal(t, want, req.Header.Get(name), name)
			}
		})
	}
}

func hmacSHA256(secret, msg []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(msg)
	return m.Sum(nil)
}

// Stripe signs "t.body" with the whsec_ string itself as the key and sends
// hex; several v1 entries are accepted; the replay key does not depend on
// which of them verified.
func TestWebhookStripe(t *testing.T) {
	const secret = "whsec_test_secret_0123456789"
	const oldSecret = "whsec_previous_secret"
	body := `{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","type":"payment_intent.succeeded"}`
	w := webhookScheme(t, webhooksig.PresetStripe, webhookKey(t, webhooksig.PresetStripe, "acct", secret, oldSecret))
	sig := func(sec string) string {
		return hex.EncodeToString(hmacSHA256([]byte(sec), []byte("1700000000."+body)))
	}
	verify := func(header, b string) (signature.Verified, error) {
		return w.Verify(context.Background(), webhookRequest(map[string]string{"Stripe-Signature": header}, b))
	}
	v1, err := verify("t=1700000000,v1="+sig(secret)+",v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39", body)
	require.NoError(t, err)
	assert.Equal(t, "evt_1NG8Du2eZvKYlo2CUI79vXWy", v1.IdempotencyKey)
	assert.False(t, v1.IdempotencyOptional)
	assert.Equal(t, time.Unix(1700000000, 0), v1.Timestamp)
	assert.Equal(t, "sig:"+sig(secret), v1.ReplayKey)

	v2, err := verify("t=1700000000,v1="+sig(oldSecret), body)
	require.NoError(t, err)
	assert.Equal(t, v1.ReplayKey, v2.ReplayKey, "the replay key is the MAC under the key's first secret")
	v3, err := verify("t=1700000000,v1=00"+sig(secret)[2:]+",v1="+sig(oldSecret)+",v1="+sig(secret), body)
	require.NoError(t, err)
	assert.Equal(t, v1.ReplayKey, v3.ReplayKey)

	noID := `{"object":"event"}`
	v4, err := w.Verify(context.Background(), webhookRequest(map[string]string{"Stripe-Signature": "t=1700000000,v1=" +
		hex.EncodeToString(hmacSHA256([]byte(secret), []byte("1700000000."+noID)))}, noID))
	require.NoError(t, err)
	assert.Empty(t, v4.IdempotencyKey)
	assert.True(t, v4.IdempotencyOptional)

	_, err = verify("t=1700000000,v1="+sig("whsec_wrong"), body)
	require.ErrorIs(t, err, signature.ErrInvalid)
	_, err = verify("t=1700000000,v1=xyz", body)
	require.ErrorIs(t, err, signature.ErrMalformed)
	_, err = verify("t=1700000000,v0=abc", body)
	require.ErrorIs(t, err, signature.ErrMissing)
	_, err = verify("v1="+sig(secret), body)
	require.ErrorIs(t, err, timestamp.ErrMissing)
	_, err = verify("t=17e8,v1="+sig(secret), body)
	require.ErrorIs(t, err, timestamp.ErrMalformed)
	_, err = verify("", body)
	require.ErrorIs(t, err, signature.ErrMissing)
	_, err = verify("t=1700000000,v1="+sig(secret)+strings.Repeat(",x=y", 2000), body)
	require.ErrorIs(t, err, signature.ErrMalformed)
	badID := `{"id":"evt_` + strings.Repeat("x", 300) + `"}`
	_, err = w.Verify(context.Background(), webhookRequest(map[string]string{"Stripe-Signature": "t=1700000000,v1=" +
		hex.EncodeToString(hmacSHA256([]byte(secret), []byte("1700000000."+badID)))}, badID))
	require.ErrorIs(t, err, signature.ErrMalformed)
}

// Shopify signs the body alone and sends base64; the delivery id is
// X-Shopify-Webhook-Id.
func TestWebhookShopify(t *testing.T) {
	const secret = "shpss_0123456789abcdef"
	body := `{"id":820982911946154508,"email":"jon@example.com"}`
	w := webhookScheme(t, webhooksig.PresetShopify, webhookKey(t, webhooksig.PresetShopify, "shop", secret))
	good := base64.StdEncoding.EncodeToString(hmacSHA256([]byte(secret), []byte(body)))
	headers := func(sig, id string) map[string]string {
		return map[string]string{"X-Shopify-Hmac-Sha256": sig, "X-Shopify-Webhook-Id": id}
	}
	v, err := w.Verify(context.Background(), webhookRequest(headers(good, "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"), body))
	require.NoError(t, err)
	assert.Equal(t, "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", v.IdempotencyKey)
	assert.Empty(t, v.ReplayKey)
	assert.True(t, v.Timestamp.IsZero())
	_, err = w.Verify(context.Background(), webhookRequest(headers(good, ""), body))
	require.ErrorIs(t, err, signature.ErrMissing)
	_, err = w.Verify(context.Background(), webhookRequest(headers(good, "bad\x01id"), body))
	require.ErrorIs(t, err, signature.ErrMalformed)
	_, err = w.Verify(context.Background(), webhookRequest(headers("not-base64", "id"), body))
	require.ErrorIs(t, err, signature.ErrMalformed)
	_, err = w.Verify(context.Background(), webhookRequest(headers(good, "id"), body+"x"))
	require.ErrorIs(t, err, signature.ErrInvalid)
	_, err = w.Verify(context.Background(), webhookRequest(headers("", "id"), body))
	require.ErrorIs(t, err, signature.ErrMissing)
}

func TestWebhookGitHubAndSlackErrors(t *testing.T) {
	gh := webhookScheme(t, webhooksig.PresetGitHub, webhookKey(t, webhooksig.PresetGitHub, "gh", "It's a Secret to Everybody"))
	_, err := gh.Verify(context.Background(), webhookRequest(map[string]string{"X-Hub-Signature-256": "sha1=abc", "X-GitHub-Delivery": "d"}, "x"))
	require.ErrorIs(t, err, signature.ErrMalformed)
	_, err = gh.Verify(context.Background(), webhookRequest(map[string]string{"X-GitHub-Delivery": "d"}, "x"))
	require.ErrorIs(t, err, signature.ErrMissing)
	_, err = gh.Verify(context.Background(), webhookRequest(map[string]string{"X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}, "Hello, World!"))
	require.ErrorIs(t, err, signature.ErrMissing, "no delivery id")

	sl := webhookScheme(t, webhooksig.PresetSlack, webhookKey(t, webhooksig.PresetSlack, "sl", "8f742231b10e8888abcd99yyyzzz85a5"))
	for _, tc := range []struct {
		sig, ts string
		want    error
	}{
		{"", "1531420618", signature.ErrMissing},
		{"v0=abc", "", timestamp.ErrMissing},
		{"v0=abc", "x", timestamp.ErrMalformed},
		{"v1=abc", "1531420618", signature.ErrMissing},
		{"v0=abc", "1531420618", signature.ErrMalformed},
		{"v0=" + strings.Repeat("0", 64), "1531420618", signature.ErrInvalid},
	} {
		_, err := sl.Verify(context.Background(), webhookRequest(map[string]string{"X-Slack-Signature": tc.sig, "X-Slack-Request-Timestamp": tc.ts}, "b"))
		require.ErrorIs(t, err, tc.want, "%+v", tc)
	}
}

func TestWebhookStandardErrors(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	w := webhookScheme(t, webhooksig.PresetStandardWebhooks, webhookKey(t, webhooksig.PresetStandardWebhooks, "sw", secret))
	good := map[string]string{"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330", "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}
	body := `{"test": 2432232314}`
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range good {
			m[a] = b
		}
		m[k] = v
		return m
	}
	for _, tc := range []struct {
		name    string
		headers map[string]string
		want    error
	}{
		{"no signature", with("webhook-signature", ""), signature.ErrMissing},
		{"no id", with("webhook-id", ""), signature.ErrMissing},
		{"id with a dot", with("webhook-id", "msg.1"), signature.ErrMalformed},
		{"no timestamp", with("webhook-timestamp", ""), timestamp.ErrMissing},
		{"bad timestamp", with("webhook-timestamp", "-1"), timestamp.ErrMalformed},
		{"only other versions", with("webhook-signature", "v2,abc"), signature.ErrMissing},
		{"partial signature", with("webhook-signature", "v1,"), signature.ErrMalformed},
		{"bad base64 and wrong", with("webhook-signature", "v1,!!!! v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="), signature.ErrMalformed},
		{"wrong signature", with("webhook-signature", "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="), signature.ErrInvalid},
		{"other timestamp", with("webhook-timestamp", "1614265331"), signature.ErrInvalid},
		{"too long", with("webhook-signature", strings.Repeat("v2,x ", 1000)), signature.ErrMalformed},
	} {
		_, err := w.Verify(context.Background(), webhookRequest(tc.headers, body))
		require.ErrorIs(t, err, tc.want, tc.name)
	}
}

// Standard Webhooks "v1a": Ed25519 over the same content, public keys from
// the key's PublicKey or a "whpk_" string.
func TestWebhookStandardV1a(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	parsed, err := webhooksig.ParseStandardWebhooksPublicKey("whpk_" + base64.StdEncoding.EncodeToString(pub))
	require.NoError(t, err)
	assert.Equal(t, pub, parsed)
	w := webhookScheme(t, webhooksig.PresetStandardWebhooks,
		webhookKey(t, webhooksig.PresetStandardWebhooks, "sym", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
		signature.Key{ID: "asym", PublicKey: parsed})
	body := []byte(`{"type":"contact.created"}`)
	req, _ := http.NewRequest(http.MethodPost, "https://hooks.example.com/", nil)
	s := &webhooksig.Signer{Preset: webhooksig.PresetStandardWebhooks, PrivateKey: priv, DeliveryID: "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", Now: func() time.Time { return time.Unix(1674087231, 0) }}
	require.NoError(t, s.Sign(req, body))
	assert.True(t, strings.HasPrefix(req.Header.Get("webhook-signature"), "v1a,"))
	r := &signature.Request{Method: http.MethodPost, Header: req.Header, Body: body}
	v, err := w.Verify(context.Background(), r)
	require.NoError(t, err)
	assert.Equal(t, "asym", v.KeyID)
	assert.Equal(t, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W:1674087231", v.ReplayKey)
	r.Body = []byte(`{"type":"contact.deleted"}`)
	_, err = w.Verify(context.Background(), r)
	require.ErrorIs(t, err, signature.ErrInvalid)

	for _, bad := range []string{"whsk_abc", "whpk_!!", "whpk_AAAA"} {
		_, err := webhooksig.ParseStandardWebhooksPublicKey(bad)
		require.Error(t, err, bad)
	}
}

func TestParseWebhookSecret(t *testing.T) {
	b, err := webhooksig.ParseSecret(webhooksig.PresetStandardWebhooks, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	require.NoError(t, err)
	assert.Len(t, b, 24)
	b2, err := webhooksig.ParseSecret(webhooksig.PresetStandardWebhooks, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw==")
	require.Error(t, err, "wrong padding")
	assert.Nil(t, b2)
	raw, err := webhooksig.ParseSecret(webhooksig.PresetStripe, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	require.NoError(t, err)
	assert.Equal(t, []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), raw)
	_, err = webhooksig.ParseSecret(webhooksig.PresetStandardWebhooks, "whsec_")
	require.Error(t, err)
	_, err = webhooksig.ParseSecret(webhooksig.PresetStandardWebhooks, "whsec_***")
	require.Error(t, err)
	plain, err := webhooksig.ParseSecret(webhooksig.PresetStandardWebhooks, "plain")
	require.NoError(t, err)
	assert.Equal(t, []byte("plain"), plain)
}

func TestNewWebhookRejects(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	s := [][]byte{[]byte("s")}
	for _, tc := range []struct {
		preset string
		keys   []signature.Key
	}{
		{"paypal", []signature.Key{{ID: "a", Secrets: s}}},
		{webhooksig.PresetGitHub, nil},
		{webhooksig.PresetGitHub, []signature.Key{{Secrets: s}}},
		{webhooksig.PresetGitHub, []signature.Key{{ID: "a", Secrets: s}, {ID: "a", Secrets: s}}},
		{webhooksig.PresetGitHub, []signature.Key{{ID: "a"}}},
		{webhooksig.PresetGitHub, []signature.Key{{ID: "a", Secrets: [][]byte{{}}}}},
		{webhooksig.PresetGitHub, []signature.Key{{ID: "a", PublicKey: pub}}},
		{webhooksig.PresetStandardWebhooks, []signature.Key{{ID: "a", PublicKey: "not a key"}}},
	} {
		_, err := webhooksig.New(tc.preset, tc.keys)
		require.Error(t, err, "%+v", tc)
	}
	w, err := webhooksig.New(webhooksig.PresetSlack, []signature.Key{{ID: "a", Secrets: s}})
	require.NoError(t, err)
	assert.Equal(t, "slack", w.Preset())
	assert.Len(t, webhooksig.Presets(), 5)
}

func TestWebhookSignerErrors(t *testing.T) {
	req, _ := http.NewRequest(http.MethodPost, "https://a.example/", nil)
	require.Error(t, (&webhooksig.Signer{Preset: "stripe"}).Sign(req, nil))
	require.Error(t, (&webhooksig.Signer{Preset: "paypal", Secret: []byte("s")}).Sign(req, nil))
	s := &webhooksig.Signer{Preset: "shopify", Secret: []byte("s")}
	require.NoError(t, s.Sign(req, []byte("x")))
	assert.True(t, strings.HasPrefix(req.Header.Get("X-Shopify-Webhook-Id"), "msg_"))
}
