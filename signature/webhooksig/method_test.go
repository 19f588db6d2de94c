package webhooksig_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/webhooksig"
)

// No webhook preset signs the method: a captured delivery resent with
// another method would verify, so every preset accepts POST alone, byte
// for byte, and refuses any other method before it looks at a signature.
func TestWebhookMethodNotAllowed(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	secret := []byte("a-webhook-secret")
	tests := []struct {
		preset string
		signer *webhooksig.Signer
		key    signature.Key
	}{
		{webhooksig.PresetStandardWebhooks, &webhooksig.Signer{Preset: webhooksig.PresetStandardWebhooks, Secret: secret}, signature.Key{ID: "k", Secrets: [][]byte{secret}}},
		{webhooksig.PresetStandardWebhooks + " v1a", &webhooksig.Signer{Preset: webhooksig.PresetStandardWebhooks, PrivateKey: priv}, signature.Key{ID: "k", PublicKey: priv.Public()}},
		{webhooksig.PresetStripe, &webhooksig.Signer{Preset: webhooksig.PresetStripe, Secret: secret}, signature.Key{ID: "k", Secrets: [][]byte{secret}}},
		{webhooksig.PresetGitHub, &webhooksig.Signer{Preset: webhooksig.PresetGitHub, Secret: secret}, signature.Key{ID: "k", Secrets: [][]byte{secret}}},
		{webhooksig.PresetSlack, &webhooksig.Signer{Preset: webhooksig.PresetSlack, Secret: secret}, signature.Key{ID: "k", Secrets: [][]byte{secret}}},
		{webhooksig.PresetShopify, &webhooksig.Signer{Preset: webhooksig.PresetShopify, Secret: secret}, signature.Key{ID: "k", Secrets: [][]byte{secret}}},
	}
	body := []byte(`{"id":"evt_1","type":"ping"}`)
	for _, tt := range tests {
		t.Run(tt.preset, func(t *testing.T) {
			w, err := webhooksig.New(tt.signer.Preset, []signature.Key{tt.key})
			require.NoError(t, err)
			req, err := http.NewRequest(http.MethodPost, "https://hooks.example.com/hooks", nil)
			require.NoError(t, err)
			require.NoError(t, tt.signer.Sign(req, body))
			delivery := func(method string) *signature.Request {
				return &signature.Request{Method: method, Scheme: "https", Host: "hooks.example.com", Target: "/hooks", Header: req.Header, Body: body}
			}

			v, err := w.Verify(context.Background(), delivery(http.MethodPost))
			require.NoError(t, err)
			assert.Equal(t, "k", v.KeyID)

			for _, method := range []string{"PUT", "DELETE", "PATCH", "GET", "post", "Post", "pOST", "POST ", ""} {
				_, err := w.Verify(context.Background(), delivery(method))
				require.ErrorIs(t, err, signature.ErrMethodNotAllowed, "method %q", method)
				assert.NotErrorIs(t, err, signature.ErrInvalid)
				assert.Equal(t, []string{http.MethodPost}, signature.AllowedMethods(err), "method %q", method)
			}

			// Refused before any header is read: an unsigned PUT is a
			// method error, not a missing signature.
			_, err = w.Verify(context.Background(), &signature.Request{Method: http.MethodPut, Header: http.Header{}, Body: body})
			require.ErrorIs(t, err, signature.ErrMethodNotAllowed)
			assert.NotErrorIs(t, err, signature.ErrMissing)
		})
	}
}

func TestAllowedMethods(t *testing.T) {
	assert.Nil(t, signature.AllowedMethods(nil))
	assert.Nil(t, signature.AllowedMethods(signature.ErrInvalid))
	assert.Nil(t, signature.AllowedMethods(signature.ErrMethodNotAllowed), "the bare sentinel names no methods")
}
