package replayguard_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/signature"
)

// trace records what the Guard reports about one request.
type trace struct {
	keyID, subject string
	verified       bool
	code           string
	outcome        idempotency.Outcome
	outcomes       int
}

func (t *trace) Verified(v signature.Verified) {
	t.verified, t.keyID, t.subject = true, v.KeyID, v.Subject
}
func (t *trace) Rejected(code string) { t.code = code }
func (t *trace) Idempotency(o idempotency.Outcome) {
	t.outcome = o
	t.outcomes++
}

func traced(r *http.Request) (*http.Request, *trace) {
	tr := &trace{}
	return r.WithContext(replayguard.WithRequestTrace(r.Context(), tr)), tr
}

// TestRequestTrace: the Middleware reports to the request's trace the
// identity once the signature verified (also when the request is refused
// afterwards), the problem code of a rejection and the dedupe outcome.
func TestRequestTrace(t *testing.T) {
	g := newGuard(t, testConfig())
	up := &upstream{}
	h := g.Middleware(up)
	serve := func(r *http.Request) (*httptest.ResponseRecorder, *trace) {
		r, tr := traced(r)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w, tr
	}

	first := signedRequest(t, "client-a", "secret-a-0123456789", http.MethodPost, "/v1/charges", []byte("b"), fixedNow)
	w, tr := serve(first)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Equal(t, trace{verified: true, keyID: "client-a", outcome: idempotency.OutcomeExecuted, outcomes: 1}, *tr)

	// The same bytes again: the signature verifies, the nonce is replayed
	// (in the dedupe step, which adds a covered request's nonce): no
	// record was touched.
	replay := httptest.NewRequest(http.MethodPost, "http://api.example.com/v1/charges", strings.NewReader("b"))
	replay.Header = first.Header.Clone()
	w, tr = serve(replay)
	require.Equal(t, http.StatusUnauthorized, w.Code)
	assert.Equal(t, trace{verified: true, keyID: "client-a", code: "nonce_replayed", outcome: idempotency.OutcomeNone, outcomes: 1}, *tr)

	// A retry of the operation, signed anew: the stored response.
	retry := signedRequest(t, "client-a", "secret-a-0123456789", http.MethodPost, "/v1/charges", []byte("b"), fixedNow.Add(time.Second),
		func(r *http.Request) { r.Header.Set("Idempotency-Key", first.Header.Get("Idempotency-Key")) })
	w, tr = serve(retry)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Equal(t, "true", w.Header().Get(idempotency.ReplayedHeader))
	assert.Equal(t, trace{verified: true, keyID: "client-a", outcome: idempotency.OutcomeReplayed, outcomes: 1}, *tr)

	// A wrong secret never verifies: no identity is reported.
	w, tr = serve(signedRequest(t, "client-a", "wrong-secret-0123456789", http.MethodGet, "/v1/x", nil, fixedNow))
	require.Equal(t, http.StatusUnauthorized, w.Code)
	assert.Equal(t, trace{code: "signature_invalid"}, *tr)

	// Not covered by idempotency: no outcome reported.
	w, tr = serve(signedRequest(t, "client-a", "secret-a-0123456789", http.MethodGet, "/v1/x", nil, fixedNow))
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, trace{verified: true, keyID: "client-a"}, *tr)
	assert.Equal(t, int64(2), up.hits.Load())
}

// TestRequestTraceForwardAuth: the forward-auth endpoint reports the same
// way, including the refusal of an untrusted peer.
func TestRequestTraceForwardAuth(t *testing.T) {
	f := newFAFixture(t, "127.0.0.1")
	o := signOriginal(t, http.MethodGet, "https://api.example.com/v1/things", "")

	r, tr := traced(o.authRequest(t, "127.0.0.1:40000", false))
	assert.Equal(t, http.StatusOK, f.do(t, r).status)
	assert.Equal(t, trace{verified: true, keyID: "client-a"}, *tr)

	r, tr = traced(o.authRequest(t, "127.0.0.1:40000", false))
	assert.Equal(t, "nonce_replayed", f.do(t, r).code)
	assert.Equal(t, trace{verified: true, keyID: "client-a", code: "nonce_replayed"}, *tr)

	r, tr = traced(o.authRequest(t, "10.1.2.3:40000", false))
	assert.Equal(t, "forwarded_untrusted", f.do(t, r).code)
	assert.Equal(t, trace{code: "forwarded_untrusted"}, *tr)
}
