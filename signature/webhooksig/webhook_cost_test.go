package webhooksig_test

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/webhooksig"
)

// An Ed25519 signature costs a full pass over the delivery per public key,
// so a standard-webhooks header is tried for its first MaxEd25519Signatures
// "v1a," entries only (the first alone beside "v1," entries, whose MACs
// cost a pass per secret, when keys have secrets): the most a provider
// sends, two during a rotation, and what keeps a forged delivery within a
// small multiple of a valid one. The 4096-byte header holds 44 such
// entries.
func TestWebhookEd25519SignatureCap(t *testing.T) {
	require.Equal(t, 2, webhooksig.MaxEd25519Signatures)
	const id, ts = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "1674087231"
	body := []byte(`{"type":"contact.created"}`)
	msg := append([]byte(id+"."+ts+"."), body...)

	var keys []signature.Key
	var privs []ed25519.PrivateKey
	for _, kid := range []string{"a", "b", "c", "d"} {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		keys = append(keys, signature.Key{ID: kid, Secrets: [][]byte{[]byte("secret-" + kid)}, PublicKey: pub})
		privs = append(privs, priv)
	}
	w := webhookScheme(t, webhooksig.PresetStandardWebhooks, keys...)
	// Without secrets, v1 entries cost nothing and leave the v1a cap at two.
	pubOnly := make([]signature.Key, len(keys))
	for i, k := range keys {
		pubOnly[i] = signature.Key{ID: k.ID, PublicKey: k.PublicKey}
	}
	wPub := webhookScheme(t, webhooksig.PresetStandardWebhooks, pubOnly...)
	_, stranger, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	good := "v1a," + base64.StdEncoding.EncodeToString(ed25519.Sign(privs[3], msg))
	wrong := "v1a," + base64.StdEncoding.EncodeToString(ed25519.Sign(stranger, msg))

	header := func(nWrong int, tail ...string) string {
		entries := make([]string, 0, nWrong+len(tail))
		for i := 0; i < nWrong; i++ {
			entries = append(entries, wrong)
		}
		return strings.Join(append(entries, tail...), " ")
	}
	const wrongV1 = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= "
	tests := []struct {
		name    string
		w       *webhooksig.Scheme
		header  string
		wantErr error
	}{
		{"one valid entry", w, header(0, good), nil},
		{"valid second of two (a rotation)", w, header(1, good), nil},
		{"valid first of 44", w, header(0, good) + " " + header(43), nil},
		{"valid third: past the cap", w, header(2, good), signature.ErrMalformed},
		{"valid 44th of 44: past the cap", w, header(43, good), signature.ErrMalformed},
		{"two wrong entries", w, header(2), signature.ErrInvalid},
		{"44 wrong entries", w, header(44), signature.ErrMalformed},
		{"beside a v1 entry, valid first v1a", w, wrongV1 + header(0, good), nil},
		{"beside a v1 entry, valid second v1a: past the cap", w, wrongV1 + header(1, good), signature.ErrMalformed},
		{"beside a v1 entry, one wrong v1a", w, wrongV1 + header(1), signature.ErrInvalid},
		{"no secrets: beside a v1 entry, valid second v1a", wPub, wrongV1 + header(1, good), nil},
		{"no secrets: beside a v1 entry, valid third v1a: past the cap", wPub, wrongV1 + header(2, good), signature.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := webhookRequest(map[string]string{"Webhook-Id": id, "Webhook-Timestamp": ts, "Webhook-Signature": tt.header}, string(body))
			require.LessOrEqual(t, len(tt.header), 4096)
			v, err := tt.w.Verify(context.Background(), r)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "d", v.KeyID)
		})
	}
}

// MAC signatures need no cap: each secret's MAC over the delivery is
// computed once and compared with every entry, so every entry of an
// accepted header is tried.
func TestWebhookEveryMACSignatureIsTried(t *testing.T) {
	const id, ts = "msg_p5jXN8AQM9LWM0D4loKWxJek", "1674087231"
	body := `{"type":"invoice.paid"}`
	secrets := [][]byte{[]byte("s1"), []byte("s2")}
	mac := func(secret []byte, prefix string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(prefix + body))
		return m.Sum(nil)
	}
	keys := []signature.Key{{ID: "a", Secrets: secrets}, {ID: "b", Secrets: [][]byte{[]byte("s3"), []byte("s4")}}}

	t.Run(webhooksig.PresetStandardWebhooks, func(t *testing.T) {
		w := webhookScheme(t, webhooksig.PresetStandardWebhooks, keys...)
		wrong := "v1," + base64.StdEncoding.EncodeToString(make([]byte, 32))
		entries := make([]string, 0, 85)
		for len(entries) < 84 {
			entries = append(entries, wrong)
		}
		entries = append(entries, "v1,"+base64.StdEncoding.EncodeToString(mac([]byte("s4"), id+"."+ts+".")))
		h := strings.Join(entries, " ")
		require.LessOrEqual(t, len(h), 4096)
		v, err := w.Verify(context.Background(), webhookRequest(map[string]string{"Webhook-Id": id, "Webhook-Timestamp": ts, "Webhook-Signature": h}, body))
		require.NoError(t, err, "the 85th entry verifies")
		assert.Equal(t, "b", v.KeyID)
	})
	t.Run(webhooksig.PresetStripe, func(t *testing.T) {
		w := webhookScheme(t, webhooksig.PresetStripe, keys...)
		parts := []string{"t=" + ts}
		for len(parts) < 60 {
			parts = append(parts, "v1="+strings.Repeat("0", 64))
		}
		parts = append(parts, "v1="+hex.EncodeToString(mac([]byte("s4"), ts+".")))
		h := strings.Join(parts, ",")
		require.LessOrEqual(t, len(h), 4096)
		v, err := w.Verify(context.Background(), webhookRequest(map[string]string{"Stripe-Signature": h}, body))
		require.NoError(t, err, "the 60th v1 entry verifies")
		assert.Equal(t, "b", v.KeyID)
	})
}

func TestNewWebhookRejectsShortEd25519Key(t *testing.T) {
	_, err := webhooksig.New(webhooksig.PresetStandardWebhooks, []signature.Key{{ID: "a", PublicKey: ed25519.PublicKey(make([]byte, 31))}})
	require.Error(t, err)
}
