package replayguard_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/signature/hmacsig"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestDerivedKeys: with derive_key: fingerprint a covered request without
// an Idempotency-Key is deduplicated by content inside derive_window.
func TestDerivedKeys(t *testing.T) {
	clk := &clock{t: fixedNow}
	cfg := testConfig()
	cfg.Idempotency.DeriveKey = "fingerprint"
	cfg.Idempotency.DeriveWindow = replayguard.Duration(5 * time.Minute)
	g, err := replayguard.New(cfg, replayguard.WithClock(clk.now))
	require.NoError(t, err)
	up := &upstream{}
	h := g.Middleware(up)

	send := func(body, idemKey string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "http://api.example.com/v1/orders", bytes.NewReader([]byte(body)))
		if idemKey != "" {
			r.Header.Set("Idempotency-Key", idemKey)
		}
		// A fresh nonce and timestamp on every send: these are new
		// transmissions, not replays.
		s := &hmacsig.Signer{KeyID: "client-a", Secret: []byte("secret-a-0123456789"), Now: clk.now}
		require.NoError(t, s.Sign(r, []byte(body)))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}

	first := send(`{"sku":"a"}`, "")
	require.Equal(t, 200, first.Code, first.Body.String())
	second := send(`{"sku":"a"}`, "")
	require.Equal(t, 200, second.Code)
	assert.Equal(t, "true", second.Header().Get("Idempotent-Replayed"), "same body inside the window: replayed")
	assert.Equal(t, int64(1), up.hits.Load(), "executed once")

	other := send(`{"sku":"b"}`, "")
	assert.Empty(t, other.Header().Get("Idempotent-Replayed"))
	assert.Equal(t, int64(2), up.hits.Load(), "a different body executes")

	withKey := send(`{"sku":"a"}`, "client-key-1")
	assert.Empty(t, withKey.Header().Get("Idempotent-Replayed"), "a client key wins over the derived one")
	assert.Equal(t, int64(3), up.hits.Load())

	clk.advance(5*time.Minute + time.Second)
	after := send(`{"sku":"a"}`, "")
	assert.Empty(t, after.Header().Get("Idempotent-Replayed"), "after the window it executes again")
	assert.Equal(t, int64(4), up.hits.Load())

	// With derive_key off the required key stays a 400.
	g2, err := replayguard.New(testConfig(), replayguard.WithClock(clk.now))
	require.NoError(t, err)
	h = g2.Middleware(up)
	missing := send(`{"sku":"a"}`, "")
	assert.Equal(t, 400, missing.Code)
}
