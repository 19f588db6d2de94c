package traefik_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPluginDerivedKeyWindowUnderYaegi: under the interpreter, a request
// without an Idempotency-Key whose key is derived from its fingerprint is
// deduplicated for idempotency.deriveWindow, not for idempotency.ttl (an
// assignment of a call's result and a second value in one statement once
// kept the record for the TTL there).
func TestPluginDerivedKeyWindowUnderYaegi(t *testing.T) {
	plugin := loadPlugin(t, pluginGoPath(t))
	opts := pluginOptions()
	opts["idempotency"] = map[string]any{"deriveKey": "fingerprint", "deriveWindow": "1s", "ttl": "1h"}
	up := &upstream{}
	h, err := plugin.newHandler(context.Background(), up, opts, "derive@file")
	require.NoError(t, err)
	body := []byte(`{"amount":100}`)
	post := func() *http.Request {
		return signWithKey(t, http.MethodPost, "/v1/charges", body, time.Now(), "").request(body)
	}

	rec := serve(h, post())
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	rec = serve(h, post())
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, "true", rec.Header().Get("Idempotent-Replayed"), "the same request within the window is a retry")
	require.EqualValues(t, 1, up.hits.Load())

	time.Sleep(1300 * time.Millisecond)
	rec = serve(h, post())
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Empty(t, rec.Header().Get("Idempotent-Replayed"), "past the window it is a new operation")
	assert.EqualValues(t, 2, up.hits.Load())
}
