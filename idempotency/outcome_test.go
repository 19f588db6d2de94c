package idempotency_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/idempotency"
)

// TestServeOutcome: ServeOutcome reports what the step did with each
// request, the way an access log names it.
func TestServeOutcome(t *testing.T) {
	h := newHandler(idempotency.NewMemory(), idempotency.Options{Required: false})
	release := make(chan struct{})
	entered := make(chan struct{})
	up := &upstream{fn: func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		w.WriteHeader(http.StatusCreated)
	}}
	serve := func(method, target, key, body string) (idempotency.Outcome, error) {
		r := httptest.NewRequest(method, target, strings.NewReader(body))
		if key != "" {
			r.Header.Set(idempotency.HeaderName, key)
		}
		return h.ServeOutcome(httptest.NewRecorder(), r, idempotency.Request{Principal: "p", Target: target, Body: []byte(body)}, up)
	}

	o, err := serve(http.MethodGet, "/v1/x", "k-get", "")
	require.NoError(t, err)
	assert.Equal(t, idempotency.OutcomeNone, o, "method not covered")
	o, err = serve(http.MethodPost, "/v1/x", "", "b")
	require.NoError(t, err)
	assert.Equal(t, idempotency.OutcomeNone, o, "no key, none required")

	o, err = serve(http.MethodPost, "/v1/x", "k-1", "b")
	require.NoError(t, err)
	assert.Equal(t, idempotency.OutcomeExecuted, o)
	o, err = serve(http.MethodPost, "/v1/x", "k-1", "b")
	require.NoError(t, err)
	assert.Equal(t, idempotency.OutcomeReplayed, o)
	o, err = serve(http.MethodPost, "/v1/x", "k-1", "other body")
	require.ErrorIs(t, err, idempotency.ErrKeyReused)
	assert.Equal(t, idempotency.OutcomeNone, o, "reuse is refused before anything runs")

	done := make(chan idempotency.Outcome)
	go func() {
		o, _ := serve(http.MethodPost, "/slow", "k-slow", "b")
		done <- o
	}()
	<-entered
	o, err = serve(http.MethodPost, "/slow", "k-slow", "b")
	require.ErrorIs(t, err, idempotency.ErrInProgress)
	assert.Equal(t, idempotency.OutcomeInProgress, o)
	close(release)
	assert.Equal(t, idempotency.OutcomeExecuted, <-done)

	for o, name := range map[idempotency.Outcome]string{
		idempotency.OutcomeNone: "none", idempotency.OutcomeExecuted: "executed",
		idempotency.OutcomeReplayed: "replayed", idempotency.OutcomeInProgress: "in_progress",
	} {
		assert.Equal(t, name, o.String())
	}
}
