package main_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBinaryDerivedKeys: with derive_key: fingerprint, a POST without an
// Idempotency-Key is deduplicated by content inside derive_window.
func TestBinaryDerivedKeys(t *testing.T) {
	up := newOpUpstream(t)
	cfg := replaceLine(fmt.Sprintf(idemConfig, up.URL), "idempotency: {ttl: 1h, lease: 2s}",
		"idempotency: {ttl: 1h, lease: 2s, derive_key: fingerprint, derive_window: 1500ms}")
	g := startGateway(t, cfg)
	const secret = "secret-a-0123456789"
	post := func(body, key string) response {
		return send(t, signedWithKey(t, g, "client-a", secret, "/v1/orders", key, body))
	}

	first := post(`{"sku":"a"}`, "")
	require.Equal(t, 201, first.status, first.body)
	second := post(`{"sku":"a"}`, "")
	require.Equal(t, 201, second.status)
	assert.Equal(t, "true", second.header.Get("Idempotent-Replayed"), "same body, fresh signature, inside the window: executed once")
	assert.Equal(t, first.body, second.body)
	assert.Equal(t, int64(1), up.executions.Load())

	other := post(`{"sku":"b"}`, "")
	assert.Empty(t, other.header.Get("Idempotent-Replayed"), "another body executes")
	withKey := post(`{"sku":"a"}`, "client-chosen-key")
	assert.Empty(t, withKey.header.Get("Idempotent-Replayed"), "a client key wins over the derived one")
	assert.Equal(t, int64(3), up.executions.Load())

	time.Sleep(1600 * time.Millisecond)
	after := post(`{"sku":"a"}`, "")
	assert.Empty(t, after.header.Get("Idempotent-Replayed"), "after the window it executes again")
	assert.Equal(t, int64(4), up.executions.Load())
}
