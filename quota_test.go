package replayguard_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/config"
	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/nonce"
)

const (
	quotaSecretA = "secret-a-0123456789"
	quotaSecretB = "secret-b-0123456789"
)

func quotaConfig() replayguard.Config {
	return replayguard.Config{Keys: []replayguard.KeyConfig{
		{ID: "key-a", Secrets: []string{quotaSecretA}},
		{ID: "key-b", Secrets: []string{quotaSecretB}},
	}}
}

// quotaObserver records what the Guard reports of used-up shares.
type quotaObserver struct {
	mu       sync.Mutex
	quota    map[string]int
	failOpen int
}

func (o *quotaObserver) ObserveRequest(string, time.Duration)              {}
func (o *quotaObserver) ObserveStore(string, string, time.Duration, error) {}
func (o *quotaObserver) ObserveIdempotency(string)                         {}
func (o *quotaObserver) ObserveFailOpen(string)                            { o.mu.Lock(); o.failOpen++; o.mu.Unlock() }
func (o *quotaObserver) ObserveQuotaExceeded(store string) {
	o.mu.Lock()
	o.quota[store]++
	o.mu.Unlock()
}
func (o *quotaObserver) count(store string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.quota[store]
}
func newQuotaObserver() *quotaObserver { return &quotaObserver{quota: map[string]int{}} }
func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}
func retryAfter(t *testing.T, rec *httptest.ResponseRecorder) int {
	t.Helper()
	n, err := strconv.Atoi(rec.Header().Get("Retry-After"))
	require.NoError(t, err)
	return n
}

func TestNonceKeyShareRefusesOnlyTheKeyOverIt(t *testing.T) {
	for _, mode := range []string{replayguard.FailClosed, replayguard.FailOpen} {
		t.Run(mode, func(t *testing.T) {
			cfg := quotaConfig()
			cfg.Nonce.MaxEntries = 10 // two key entries: 5 each
			cfg.FailMode = mode
			obs := newQuotaObserver()
			h := newGuard(t, cfg, replayguard.WithObserver(obs)).Middleware(&upstream{})

			for i := 0; i < 5; i++ {
				rec := serve(h, signedRequest(t, "key-a", quotaSecretA, http.MethodGet, "/v1/items", nil, fixedNow))
				require.Equal(t, http.StatusOK, rec.Code, "request %d inside the share", i)
			}
			rec := serve(h, signedRequest(t, "key-a", quotaSecretA, http.MethodGet, "/v1/items", nil, fixedNow))
			require.Equal(t, http.StatusTooManyRequests, rec.Code, rec.Body.String())
			p := decodeProblem(t, rec)
			assert.Equal(t, "quota_exceeded", p.Code)
			assert.Equal(t, "Quota exceeded", p.Title)
			// The earliest nonce expires when its signed timestamp leaves
			// the window: 5m tolerance from fixedNow.
			assert.InDelta(t, 300, retryAfter(t, rec), 5)
			assert.Equal(t, 1, obs.count("nonce"))
			assert.Zero(t, obs.failOpen, "a used-up share is never a fail-open pass")

			for i := 0; i < 5; i++ {
				rec := serve(h, signedRequest(t, "key-b", quotaSecretB, http.MethodGet, "/v1/items", nil, fixedNow))
				require.Equal(t, http.StatusOK, rec.Code, "the other key keeps its share (request %d)", i)
			}
		})
	}
}

func TestIdempotencyKeyShareRefusesOnlyTheKeyOverIt(t *testing.T) {
	cfg := quotaConfig()
	cfg.Idempotency.MemoryMaxBytes = 8 << 10 // two key entries: 4 KiB each
	cfg.FailMode = replayguard.FailOpen
	obs := newQuotaObserver()
	up := &upstream{}
	h := newGuard(t, cfg, replayguard.WithObserver(obs)).Middleware(up)

	var refused *httptest.ResponseRecorder
	accepted := 0
	for i := 0; i < 100 && refused == nil; i++ {
		rec := serve(h, signedRequest(t, "key-a", quotaSecretA, http.MethodPost, "/v1/charges", []byte(`{"amount":1}`), fixedNow))
		switch rec.Code {
		case http.StatusOK:
			accepted++
		default:
			refused = rec
		}
	}
	require.NotNil(t, refused, "key-a never passed its share")
	require.Greater(t, accepted, 1)
	require.Equal(t, http.StatusTooManyRequests, refused.Code, refused.Body.String())
	assert.Equal(t, "quota_exceeded", decodeProblem(t, refused).Code)
	assert.Equal(t, 3600, retryAfter(t, refused), "24h until the earliest record expires, capped at an hour")
	assert.Equal(t, int64(accepted), up.hits.Load(), "the refused request never reached the upstream, even under fail_mode open")
	assert.Equal(t, 1, obs.count("idempotency"))

	for i := 0; i < accepted; i++ {
		rec := serve(h, signedRequest(t, "key-b", quotaSecretB, http.MethodPost, "/v1/charges", []byte(`{"amount":1}`), fixedNow))
		require.Equal(t, http.StatusOK, rec.Code, "the other key keeps its share (request %d)", i)
	}
}

func TestIdempotencyDefaultBoundIsConfigurable(t *testing.T) {
	cfg := quotaConfig().WithDefaults()
	assert.Equal(t, int64(256<<20), cfg.Idempotency.MemoryMaxBytes)
	assert.Equal(t, replayguard.DefaultMaxSubFilters, cfg.Nonce.MaxSubFilters)
	assert.Zero(t, cfg.Nonce.KeyShare, "0: 1 / the number of key entries")
	assert.Equal(t, 0.5, cfg.KeyShare(cfg.Idempotency.KeyShare))
	assert.Equal(t, 0.25, cfg.KeyShare(0.25))
}

func TestKeyEntriesCountTheJWKSSetAsOne(t *testing.T) {
	cfg := quotaConfig()
	assert.Equal(t, 2, cfg.KeyEntries())
	cfg.Scheme = "jwt"
	cfg.JWT.JWKSURL = "https://idp.example/jwks.json"
	assert.Equal(t, 3, cfg.KeyEntries())
	cfg.Keys = nil
	assert.Equal(t, 1, cfg.KeyEntries())
	assert.Equal(t, 1.0, cfg.KeyShare(0))
}

func TestQuotaConfigFromYAML(t *testing.T) {
	cfg, err := config.Parse([]byte(`
keys: [{id: a, secrets: [secret-a-0123456789]}]
nonce: {max_entries: 1000, max_subfilters: 6, key_share: 0.25}
idempotency: {memory_max_bytes: 67108864, key_share: 0.5}
`), func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	assert.Equal(t, 1000, cfg.Nonce.MaxEntries)
	assert.Equal(t, 6, cfg.Nonce.MaxSubFilters)
	assert.Equal(t, 0.25, cfg.Nonce.KeyShare)
	assert.Equal(t, int64(64<<20), cfg.Idempotency.MemoryMaxBytes)
	assert.Equal(t, 0.5, cfg.Idempotency.KeyShare)

	for _, tt := range []struct{ doc, field string }{
		{"nonce: {key_share: 1.5}", "nonce.key_share"},
		{"nonce: {key_share: -0.1}", "nonce.key_share"},
		{"nonce: {max_subfilters: 25}", "nonce.max_subfilters"},
		{"nonce: {max_subfilters: -1}", "nonce.max_subfilters"},
		{"idempotency: {key_share: 2}", "idempotency.key_share"},
		{"idempotency: {memory_max_bytes: -1}", "idempotency.memory_max_bytes"},
	} {
		_, err := config.Parse([]byte("keys: [{id: a, secrets: [secret-a-0123456789]}]\n"+tt.doc+"\n"), func(string) (string, bool) { return "", false })
		require.Error(t, err, tt.doc)
		assert.Contains(t, err.Error(), tt.field, tt.doc)
	}
}

func TestWriteProblemRetryAfterOfQuota(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{&nonce.QuotaError{RetryAfter: 90*time.Second + time.Millisecond}, "91"},
		{&idempotency.QuotaError{RetryAfter: 48 * time.Hour}, "3600"},
		{&nonce.QuotaError{RetryAfter: 0}, "1"},
		{&idempotency.QuotaError{RetryAfter: -time.Second}, "1"},
	} {
		rec := httptest.NewRecorder()
		replayguard.WriteProblem(rec, tt.err)
		assert.Equal(t, http.StatusTooManyRequests, rec.Code)
		assert.Equal(t, tt.want, rec.Header().Get("Retry-After"), tt.err.Error())
		assert.Equal(t, "quota_exceeded", decodeProblem(t, rec).Code)
	}
}

// TestNonceStoreIsBoundedByDefault: without nonce.max_entries the memory
// store still has a cap (DefaultNonceMaxEntries), so key shares apply to a
// configuration that names none; -1 lifts both.
func TestNonceStoreIsBoundedByDefault(t *testing.T) {
	cfg := quotaConfig()
	cfg.Nonce.KeyShare = 3.0 / replayguard.DefaultNonceMaxEntries // 3 nonces per key
	h := newGuard(t, cfg).Middleware(&upstream{})
	for i := 0; i < 3; i++ {
		require.Equal(t, http.StatusOK, serve(h, signedRequest(t, "key-a", quotaSecretA, http.MethodGet, "/v1/items", nil, fixedNow)).Code)
	}
	rec := serve(h, signedRequest(t, "key-a", quotaSecretA, http.MethodGet, "/v1/items", nil, fixedNow))
	require.Equal(t, http.StatusTooManyRequests, rec.Code, rec.Body.String())
	assert.Equal(t, "quota_exceeded", decodeProblem(t, rec).Code)
	require.Equal(t, http.StatusOK, serve(h, signedRequest(t, "key-b", quotaSecretB, http.MethodGet, "/v1/items", nil, fixedNow)).Code)

	cfg.Nonce.MaxEntries = -1
	h = newGuard(t, cfg).Middleware(&upstream{})
	for i := 0; i < 10; i++ {
		require.Equal(t, http.StatusOK, serve(h, signedRequest(t, "key-a", quotaSecretA, http.MethodGet, "/v1/items", nil, fixedNow)).Code)
	}
}
