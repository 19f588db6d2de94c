package replayguard_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/disk"
)

// openDisk opens a disk store on the Guard's clock that reaps only when
// asked, so that its commits are the requests'.
func openDisk(t *testing.T) *disk.DB {
	t.Helper()
	db, err := disk.Open(t.TempDir(), disk.WithClock(func() time.Time { return fixedNow }), disk.WithReapInterval(time.Hour))
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func diskGuard(t *testing.T, cfg replayguard.Config, db *disk.DB) *replayguard.Guard {
	t.Helper()
	return newGuard(t, cfg, replayguard.WithNonceStore(db.Nonces()), replayguard.WithIdempotencyStore(db.Records()))
}

// commits returns how many commits db made and how many writes they
// carried.
func commits(db *disk.DB) (n, writes uint64) {
	st := db.Stats()
	return st.Batch.Count, uint64(st.Batch.Sum)
}

func TestCoveredPOSTAddsItsNonceInTheClaimsCommit(t *testing.T) {
	db := openDisk(t)
	up := &upstream{}
	h := diskGuard(t, testConfig(), db).Middleware(up)
	body := []byte(`{"amount":100}`)

	n0, w0 := commits(db)
	r := signedRequest(t, "client-a", "secret-a-0123456789", http.MethodPost, "/v1/charges", body, fixedNow)
	replay := withBodyString(r.Clone(r.Context()), string(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	n1, w1 := commits(db)
	assert.Equal(t, uint64(2), n1-n0, "one commit for the nonce and the claim, one for the completed record")
	assert.Equal(t, uint64(2), w1-w0)

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, replay)
	require.Equal(t, http.StatusUnauthorized, rec.Code, rec.Body.String())
	assert.Equal(t, "nonce_replayed", decodeProblem(t, rec).Code)
	n2, _ := commits(db)
	assert.Equal(t, n1, n2, "a replay is answered without a commit")
	assert.Equal(t, int64(1), up.hits.Load())

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, signedRequest(t, "client-a", "secret-a-0123456789", http.MethodGet, "/v1/charges", nil, fixedNow))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	n3, _ := commits(db)
	assert.Equal(t, uint64(1), n3-n2, "a GET's nonce alone")
}

// With the nonce handed to the dedupe step, a replay is still refused as
// a replay before any complaint about its Idempotency-Key, and a request
// whose key is refused still spends its nonce — as when the nonce was
// added first.
func TestAReplayIsAReplayWhateverItsIdempotencyKey(t *testing.T) {
	for _, stores := range []string{"memory", "disk"} {
		t.Run(stores, func(t *testing.T) {
			var g *replayguard.Guard
			if stores == "disk" {
				g = diskGuard(t, testConfig(), openDisk(t))
			} else {
				g = newGuard(t, testConfig())
			}
			h := g.Middleware(&upstream{})
			for _, c := range []struct {
				name, key, first string
			}{
				{"malformed key", "\"", "idempotency_key_malformed"},
				{"no key", "", "idempotency_key_missing"},
			} {
				r := signedRequest(t, "client-a", "secret-a-0123456789", http.MethodPost, "/v1/x", []byte("{}"), fixedNow, func(q *http.Request) {
					q.Header.Set("Idempotency-Key", c.key)
					if c.key == "" {
						q.Header.Del("Idempotency-Key")
					}
				})
				again := withBodyString(r.Clone(r.Context()), "{}")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				assert.Equal(t, http.StatusBadRequest, rec.Code, c.name)
				assert.Equal(t, c.first, decodeProblem(t, rec).Code, c.name)
				rec = httptest.NewRecorder()
				h.ServeHTTP(rec, again)
				assert.Equal(t, http.StatusUnauthorized, rec.Code, c.name+": "+rec.Body.String())
				assert.Equal(t, "nonce_replayed", decodeProblem(t, rec).Code, c.name)
			}
		})
	}
}

func TestAFailedJointWriteFollowsTheFailMode(t *testing.T) {
	for _, mode := range []string{replayguard.FailClosed, replayguard.FailOpen} {
		t.Run(mode, func(t *testing.T) {
			db := openDisk(t)
			cfg := testConfig()
			cfg.FailMode = mode
			g := diskGuard(t, cfg, db)
			require.NoError(t, db.Close())
			up := &upstream{}
			rec := httptest.NewRecorder()
			g.Middleware(up).ServeHTTP(rec, signedRequest(t, "client-a", "secret-a-0123456789", http.MethodPost, "/v1/x", []byte("{}"), fixedNow))
			if mode == replayguard.FailClosed {
				require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
				assert.Equal(t, "store_unavailable", decodeProblem(t, rec).Code)
				assert.Zero(t, up.hits.Load())
				return
			}
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			assert.Equal(t, int64(1), up.hits.Load(), "passed without a nonce or a record")
			assert.Equal(t, uint64(1), g.FailOpenPasses())
			assert.Equal(t, uint64(1), g.Idempotency().Stats().FailOpenPasses.Load())
		})
	}
}

// Guards with scopes of their own share stores without sharing what is
// in them: a request accepted under one scope is news to another, and
// each key entry's share is its own per scope.
func TestScopesShareStoresNotEntries(t *testing.T) {
	db := openDisk(t)
	up := &upstream{}
	guard := func(scope string) http.Handler {
		return newGuard(t, testConfig(), replayguard.WithNonceStore(db.Nonces()), replayguard.WithIdempotencyStore(db.Records()),
			replayguard.WithScope(scope)).Middleware(up)
	}
	api, hooks, plain, plainToo := guard("api"), guard("hooks"), guard(""), guard("")
	r := signedRequest(t, "client-a", "secret-a-0123456789", http.MethodPost, "/v1/x", []byte("{}"), fixedNow)
	send := func(h http.Handler) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, withBodyString(r, "{}"))
		return rec
	}
	for _, h := range []http.Handler{api, hooks, plain} {
		rec := send(h)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		assert.Empty(t, rec.Header().Get("Idempotent-Replayed"), "executed, not replayed from another scope")
	}
	assert.Equal(t, int64(3), up.hits.Load())
	for _, h := range []http.Handler{api, hooks, plainToo} {
		rec := send(h)
		require.Equal(t, http.StatusUnauthorized, rec.Code, rec.Body.String())
		assert.Equal(t, "nonce_replayed", decodeProblem(t, rec).Code)
	}
}
