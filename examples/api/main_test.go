package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/hmacsig"
)

// TestAPI drives the example with the signing client: an order retried
// through the transport is created once.
func TestAPI(t *testing.T) {
	h, err := newServer("example-secret-0123456789")
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	defer srv.Close()

	attempts := 0
	flaky := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		attempts++
		resp, err := http.DefaultTransport.RoundTrip(r)
		if attempts == 1 && err == nil {
			// The response is lost on the way back: the client retries.
			_ = resp.Body.Close()
			return nil, io.ErrUnexpectedEOF
		}
		return resp, err
	})
	client := &http.Client{Transport: &signature.Transport{
		Base:   flaky,
		Signer: &hmacsig.Signer{KeyID: "shop-frontend", Secret: []byte("example-secret-0123456789")},
	}}
	resp, err := client.Post(srv.URL+"/v1/orders", "application/json", strings.NewReader(`{"sku":"book"}`))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	assert.Equal(t, 201, resp.StatusCode, string(body))
	assert.Equal(t, "true", resp.Header.Get("Idempotent-Replayed"), "the retry got the stored response")
	assert.Equal(t, 2, attempts)

	resp, err = client.Get(srv.URL + "/v1/orders")
	require.NoError(t, err)
	var count struct{ Count int }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&count))
	_ = resp.Body.Close()
	assert.Equal(t, 1, count.Count, "created once")

	unsigned, err := http.Post(srv.URL+"/v1/orders", "application/json", strings.NewReader(`{"sku":"x"}`))
	require.NoError(t, err)
	_ = unsigned.Body.Close()
	assert.Equal(t, 401, unsigned.StatusCode)
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
