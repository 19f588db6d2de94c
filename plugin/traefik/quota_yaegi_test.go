package traefik_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/replayguard/replayguard/signature/hmacsig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPluginKeySharesUnderYaegi runs the key shares of the memory stores
// in the interpreter, in a plugin of its own (its registry starts empty, so
// the memory nonce store gets this configuration's cap).
func TestPluginKeySharesUnderYaegi(t *testing.T) {
	plugin := loadPlugin(t, pluginGoPath(t))
	const otherID, otherSecret = "client-b", "fedcba9876543210fedcba9876543210"
	opts := pluginOptions()
	opts["keys"] = append(opts["keys"].([]any), map[string]any{"id": otherID, "secrets": []any{"base64:" + base64.StdEncoding.EncodeToString([]byte(otherSecret))}})
	opts["nonce"] = map[string]any{"maxEntries": "4"} // two key entries: 2 each
	up := &upstream{}
	h, err := plugin.newHandler(context.Background(), up, opts, "quota@file")
	require.NoError(t, err)

	for i := 0; i < 2; i++ {
		rec := serve(h, sign(t, http.MethodGet, "/v1/ping", nil, time.Now()).request(nil))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	}
	rec := serve(h, sign(t, http.MethodGet, "/v1/ping", nil, time.Now()).request(nil))
	require.Equal(t, http.StatusTooManyRequests, rec.Code, rec.Body.String())
	assert.Equal(t, "quota_exceeded", problemCode(t, rec))
	ra, err := strconv.Atoi(rec.Header().Get("Retry-After"))
	require.NoError(t, err)
	assert.InDelta(t, 300, ra, 5, "until the earliest nonce leaves the 5m window")

	r := httptest.NewRequest(http.MethodGet, "http://api.example.com/v1/ping", nil)
	require.NoError(t, (&hmacsig.Signer{KeyID: otherID, Secret: []byte(otherSecret)}).Sign(r, nil))
	rec = serve(h, r)
	assert.Equal(t, http.StatusOK, rec.Code, "the other key is unaffected: %s", rec.Body.String())
	assert.EqualValues(t, 3, up.hits.Load())
}
