package replayguard_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/webhooksig"
)

// whNow is the gateway's clock in the webhook tests.
var whNow = time.Unix(1_750_000_000, 0)

// whUpstream counts the deliveries that reach the receiver and answers
// each with its sequence number.
type whUpstream struct {
	hits   atomic.Int64
	status int
}

func (u *whUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := u.hits.Add(1)
	_, _ = io.Copy(io.Discard, r.Body)
	v, _ := replayguard.VerifiedFrom(r.Context())
	w.Header().Set("Content-Type", "application/json")
	if u.status != 0 {
		w.WriteHeader(u.status)
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"delivery": n, "principal": v.KeyID})
}

func whGuard(t *testing.T, preset string, secrets ...string) *replayguard.Guard {
	t.Helper()
	g, err := replayguard.New(replayguard.Config{
		Scheme: preset,
		Keys: []replayguard.KeyConfig{
			{ID: "other-endpoint", Secrets: []string{"a-secret-of-another-endpoint"}},
			{ID: "provider", Secrets: secrets},
		},
	}, replayguard.WithClock(func() time.Time { return whNow }))
	require.NoError(t, err)
	return g
}

// whDelivery is a delivery as the provider of preset sends it: signed at
// ts with the delivery id, to /hooks.
func whDelivery(t *testing.T, preset string, secret []byte, id string, ts time.Time, body string) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "https://receiver.example.com/hooks", strings.NewReader(body))
	s := &webhooksig.Signer{Preset: preset, Secret: secret, DeliveryID: id, Now: func() time.Time { return ts }}
	require.NoError(t, s.Sign(r, []byte(body)))
	return r
}

// whClone returns a byte-for-byte copy of a delivery.
func whClone(r *http.Request, body string) *http.Request {
	c := httptest.NewRequest(r.Method, "https://receiver.example.com/hooks", strings.NewReader(body))
	c.Header = r.Header.Clone()
	return c
}

func whServe(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func whCode(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var p replayguard.Problem
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p), rec.Body.String())
	assert.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
	return p.Code
}

// A provider's retry of a delivery (same id, new timestamp and signature)
// reaches the receiver once and gets the stored 2xx back; a byte-for-byte
// replay is rejected where the provider signs a timestamp, and answered
// with the stored response (never re-executed) where it does not.
func TestWebhookPresetsThroughMiddleware(t *testing.T) {
	tests := []struct {
		preset, configured string
		secret             []byte
		signsTimestamp     bool
		dedupes            bool
	}{
		{webhooksig.PresetStandardWebhooks, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", mustB64(t, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), true, true},
		{webhooksig.PresetStripe, "whsec_stripe_endpoint_secret", []byte("whsec_stripe_endpoint_secret"), true, true},
		{webhooksig.PresetGitHub, "It's a Secret to Everybody", []byte("It's a Secret to Everybody"), false, true},
		{webhooksig.PresetSlack, "8f742231b10e8888abcd99yyyzzz85a5", []byte("8f742231b10e8888abcd99yyyzzz85a5"), true, false},
		{webhooksig.PresetShopify, "shpss_secret_0123456789", []byte("shpss_secret_0123456789"), false, true},
	}
	for _, tc := range tests {
		t.Run(tc.preset, func(t *testing.T) {
			up := &whUpstream{}
			h := whGuard(t, tc.preset, "rotated-secret-0123456789", tc.configured).Middleware(up)
			body := `{"id":"evt_1","object":"event","type":"invoice.paid"}`

			first := whDelivery(t, tc.preset, tc.secret, "msg_1", whNow.Add(-time.Minute), body)
			rec := whServe(h, whClone(first, body))
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			assert.JSONEq(t, `{"delivery":1,"principal":"provider"}`, rec.Body.String())
			assert.Empty(t, rec.Header().Get("Idempotent-Replayed"))

			retry := whDelivery(t, tc.preset, tc.secret, "msg_1", whNow.Add(-10*time.Second), body)
			rec = whServe(h, retry)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			if tc.dedupes {
				assert.JSONEq(t, `{"delivery":1,"principal":"provider"}`, rec.Body.String(), "the stored 2xx")
				assert.Equal(t, "true", rec.Header().Get("Idempotent-Replayed"))
				assert.Equal(t, int64(1), up.hits.Load(), "a retried delivery reaches the receiver once")
			} else {
				assert.Equal(t, int64(2), up.hits.Load(), "slack carries no delivery id: each signed retry runs")
			}
			hitsBefore := up.hits.Load()

			rec = whServe(h, whClone(first, body))
			if tc.signsTimestamp {
				require.Equal(t, http.StatusUnauthorized, rec.Code, rec.Body.String())
				assert.Equal(t, "nonce_replayed", whCode(t, rec))
			} else {
				require.Equal(t, http.StatusOK, rec.Code)
				assert.Equal(t, "true", rec.Header().Get("Idempotent-Replayed"))
				assert.JSONEq(t, `{"delivery":1,"principal":"provider"}`, rec.Body.String())
			}
			assert.Equal(t, hitsBefore, up.hits.Load(), "a replay never re-executes")

			forged := whDelivery(t, tc.preset, []byte("not-the-secret"), "msg_2", whNow, body)
			rec = whServe(h, forged)
			require.Equal(t, http.StatusUnauthorized, rec.Code)
			assert.Equal(t, "signature_invalid", whCode(t, rec))

			tampered := whClone(whDelivery(t, tc.preset, tc.secret, "msg_3", whNow, body), body+" ")
			rec = whServe(h, tampered)
			assert.Equal(t, "signature_invalid", whCode(t, rec))

			unsigned := httptest.NewRequest(http.MethodPost, "https://receiver.example.com/hooks", strings.NewReader(body))
			rec = whServe(h, unsigned)
			assert.Equal(t, "signature_missing", whCode(t, rec))

			if tc.signsTimestamp {
				stale := whDelivery(t, tc.preset, tc.secret, "msg_4", whNow.Add(-time.Hour), body)
				rec = whServe(h, stale)
				assert.Equal(t, "timestamp_expired", whCode(t, rec))
			}
			assert.Equal(t, hitsBefore, up.hits.Load())
		})
	}
}

// A delivery the receiver failed (5xx) is not stored: the provider's retry
// runs again, and its 2xx is then what later retries get.
func TestWebhookFailedDeliveryIsRetried(t *testing.T) {
	up := &whUpstream{status: http.StatusInternalServerError}
	h := whGuard(t, webhooksig.PresetGitHub, "gh-secret-0123456789").Middleware(up)
	body := `{"zen":"Keep it logically awesome."}`
	d := whDelivery(t, webhooksig.PresetGitHub, []byte("gh-secret-0123456789"), "72d3162e-cc78-11e3-81ab-4c9367dc0958", whNow, body)
	rec := whServe(h, whClone(d, body))
	require.Equal(t, http.StatusInternalServerError, rec.Code)
	up.status = 0
	rec = whServe(h, whClone(d, body))
	require.Equal(t, http.StatusOK, rec.Code)
	rec = whServe(h, whClone(d, body))
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "true", rec.Header().Get("Idempotent-Replayed"))
	assert.Equal(t, int64(2), up.hits.Load())
}

// A Stripe delivery is deduplicated by the event id of its body: the same
// event under another signature and timestamp is the same operation.
func TestWebhookStripeDedupesByEventID(t *testing.T) {
	up := &whUpstream{}
	h := whGuard(t, webhooksig.PresetStripe, "whsec_s_0123456789").Middleware(up)
	body := `{"id":"evt_42","object":"event"}`
	for i := 0; i < 3; i++ {
		rec := whServe(h, whDelivery(t, webhooksig.PresetStripe, []byte("whsec_s_0123456789"), "", whNow.Add(-time.Duration(i)*time.Second), body))
		require.Equal(t, http.StatusOK, rec.Code)
	}
	assert.Equal(t, int64(1), up.hits.Load())
	other := `{"id":"evt_43","object":"event"}`
	rec := whServe(h, whDelivery(t, webhooksig.PresetStripe, []byte("whsec_s_0123456789"), "", whNow, other))
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, int64(2), up.hits.Load())
}

// Standard Webhooks' published test vector (libraries/go/webhook_test.go,
// TestWebhookSign) passes the whole pipeline with the clock at its
// timestamp, and only once.
func TestWebhookStandardVectorThroughGuard(t *testing.T) {
	g, err := replayguard.New(replayguard.Config{
		Scheme: webhooksig.PresetStandardWebhooks,
		Keys:   []replayguard.KeyConfig{{ID: "svix-app", Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}},
	}, replayguard.WithClock(func() time.Time { return time.Unix(1614265330, 0) }))
	require.NoError(t, err)
	up := &whUpstream{}
	body := `{"test": 2432232314}`
	req := func() *http.Request {
		r := httptest.NewRequest(http.MethodPost, "https://receiver.example.com/hooks", strings.NewReader(body))
		r.Header.Set("svix-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
		r.Header.Set("svix-timestamp", "1614265330")
		r.Header.Set("svix-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
		return r
	}
	rec := whServe(g.Middleware(up), req())
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.JSONEq(t, `{"delivery":1,"principal":"svix-app"}`, rec.Body.String())
	rec = whServe(g.Middleware(up), req())
	assert.Equal(t, "nonce_replayed", whCode(t, rec))
}

func TestWebhookPresetConfigErrors(t *testing.T) {
	dir := t.TempDir()
	rsaPEM := filepath.Join(dir, "rsa.pem")
	require.NoError(t, os.WriteFile(rsaPEM, mustRead(t, "signature/httpsig/testdata/rfc9421/test-key-rsa.pub.pem"), 0o600))
	edPEM := filepath.Join(dir, "ed.pem")
	require.NoError(t, os.WriteFile(edPEM, mustRead(t, "signature/httpsig/testdata/rfc9421/test-key-ed25519.pub.pem"), 0o600))
	off := false
	tests := []struct {
		name  string
		cfg   replayguard.Config
		field string
	}{
		{"bad whsec", replayguard.Config{Scheme: "standard-webhooks", Keys: []replayguard.KeyConfig{{ID: "a", Secrets: []string{"whsec_***"}}}}, "keys[0].secrets[0]"},
		{"bad whpk", replayguard.Config{Scheme: "standard-webhooks", Keys: []replayguard.KeyConfig{{ID: "a", Secrets: []string{"whpk_AAAA"}}}}, "keys[0].secrets[0]"},
		{"no secret", replayguard.Config{Scheme: "stripe", Keys: []replayguard.KeyConfig{{ID: "a"}}}, "keys[0].secrets"},
		{"public key on github", replayguard.Config{Scheme: "github", Keys: []replayguard.KeyConfig{{ID: "a", Secrets: []string{"s"}, PublicKeyFile: edPEM}}}, "keys[0].public_key_file"},
		{"rsa key for v1a", replayguard.Config{Scheme: "standard-webhooks", Keys: []replayguard.KeyConfig{{ID: "a", PublicKeyFile: rsaPEM}}}, "keys[0].public_key_file"},
		{"missing key file", replayguard.Config{Scheme: "standard-webhooks", Keys: []replayguard.KeyConfig{{ID: "a", PublicKeyFile: filepath.Join(dir, "nope.pem")}}}, "keys[0].public_key_file"},
		{"algorithm", replayguard.Config{Scheme: "slack", Keys: []replayguard.KeyConfig{{ID: "a", Secrets: []string{"s"}, Algorithm: "ES256"}}}, "keys[0].algorithm"},
		{"github without idempotency", replayguard.Config{Scheme: "github", Keys: []replayguard.KeyConfig{{ID: "a", Secrets: []string{"s"}}},
			Idempotency: replayguard.IdempotencyConfig{Enabled: &off}}, "idempotency.enabled"},
		{"shopify without POST", replayguard.Config{Scheme: "shopify", Keys: []replayguard.KeyConfig{{ID: "a", Secrets: []string{"s"}}},
			Idempotency: replayguard.IdempotencyConfig{Methods: []string{"PATCH"}}}, "idempotency.methods"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := replayguard.New(tc.cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "config: "+tc.field+":")
		})
	}
	g, err := replayguard.New(replayguard.Config{Scheme: "standard-webhooks", Keys: []replayguard.KeyConfig{
		{ID: "sym", Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}},
		{ID: "asym", PublicKeyFile: edPEM, Algorithm: "EdDSA"},
	}})
	require.NoError(t, err)
	require.NotNil(t, g)
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := signature.ParseSecret("base64:" + s)
	require.NoError(t, err)
	return b
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(path))
	require.NoError(t, err)
	return bytes.TrimSpace(b)
}
