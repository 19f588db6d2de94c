package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/replayguard/replayguard/signature/webhooksig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// post sends a delivery signed the way preset's provider signs it.
func post(t *testing.T, url string, s *webhooksig.Signer, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/webhooks", strings.NewReader(body))
	require.NoError(t, err)
	require.NoError(t, s.Sign(req, []byte(body)))
	return send(t, req, body)
}

func send(t *testing.T, req *http.Request, body string) *http.Response {
	t.Helper()
	c := req.Clone(req.Context())
	c.Body = io.NopCloser(strings.NewReader(body))
	c.ContentLength = int64(len(body))
	resp, err := http.DefaultClient.Do(c)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp
}

func readAll(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	require.NoError(t, err)
	return string(b)
}

// Through a real server: the first delivery runs the application, the
// provider's retry gets the stored response, a replay is turned away and a
// forged delivery never reaches it.
func TestReceiver(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	var out bytes.Buffer
	h, rc, err := newReceiver("standard-webhooks", "whsec_b2xkLXNlY3JldC0wMTIzNDU2Nzg5,"+secret, &out)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	defer srv.Close()
	key, err := webhooksig.ParseSecret("standard-webhooks", secret)
	require.NoError(t, err)
	body := `{"type":"invoice.paid","data":{"id":"in_1"}}`

	first := &webhooksig.Signer{Preset: "standard-webhooks", Secret: key, DeliveryID: "msg_1", Now: func() time.Time { return time.Now().Add(-time.Minute) }}
	resp := post(t, srv.URL, first, body)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, `{"handled":1}`, readAll(t, resp))

	retry := &webhooksig.Signer{Preset: "standard-webhooks", Secret: key, DeliveryID: "msg_1"}
	resp = post(t, srv.URL, retry, body)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "true", resp.Header.Get("Idempotent-Replayed"))
	assert.JSONEq(t, `{"handled":1}`, readAll(t, resp))

	req, err := http.NewRequest(http.MethodPost, srv.URL+"/webhooks", nil)
	require.NoError(t, err)
	require.NoError(t, first.Sign(req, []byte(body)))
	resp = send(t, req, body)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, readAll(t, resp), "nonce_replayed")

	forged := &webhooksig.Signer{Preset: "standard-webhooks", Secret: []byte("guess"), DeliveryID: "msg_2"}
	resp = post(t, srv.URL, forged, body)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	assert.Equal(t, 1, rc.Handled())
	assert.Equal(t, "delivery 1 from standard-webhooks: 44 bytes\n", out.String())
}

// Every preset builds; GitHub's dedupe-only deliveries are answered from
// the stored response when replayed.
func TestReceiverPresets(t *testing.T) {
	for _, p := range webhooksig.Presets() {
		_, _, err := newReceiver(p, "endpoint-secret-0123456789", io.Discard)
		require.NoError(t, err, p)
	}
	_, _, err := newReceiver("paypal", "endpoint-secret-0123456789", io.Discard)
	require.Error(t, err)
	_, _, err = newReceiver("github", "", io.Discard)
	require.Error(t, err)

	h, rc, err := newReceiver("github", "It's a Secret to Everybody", io.Discard)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	defer srv.Close()
	s := &webhooksig.Signer{Preset: "github", Secret: []byte("It's a Secret to Everybody"), DeliveryID: "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
	for i := 0; i < 3; i++ {
		resp := post(t, srv.URL, s, "Hello, World!")
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	assert.Equal(t, 1, rc.Handled())
}

func TestRunRejectsMissingSecret(t *testing.T) {
	require.Error(t, run("stripe", "127.0.0.1:0", "", io.Discard))
	assert.Equal(t, "fallback", envOr("REPLAYGUARD_EXAMPLE_UNSET_VARIABLE", "fallback"))
}
