package replayguard_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
)

const year = 365 * 24 * time.Hour

// A window of centuries puts a replay record's expiry past what unix
// nanoseconds can hold (year 2262); the record must still be kept, so the
// replay is refused.
func TestWindowOfCenturiesStillRefusesReplays(t *testing.T) {
	tests := []struct {
		name                  string
		tolerance, futureSkew time.Duration
		signedAt              time.Time
	}{
		{"tolerance 250 years", 250 * year, 0, fixedNow},
		{"tolerance 290 years", 290 * year, 0, fixedNow},
		{"future skew 250 years, far-future timestamp", 5 * time.Minute, 250 * year, fixedNow.Add(240 * year)},
		{"published vector from 2001", 250 * year, 0, time.Unix(1_000_000_000, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Timestamp.Tolerance = replayguard.Duration(tt.tolerance)
			cfg.Timestamp.FutureSkew = replayguard.Duration(tt.futureSkew)
			cfg.Idempotency.Enabled = new(bool)
			g := newGuard(t, cfg)
			h := g.Middleware(&upstream{})

			req := signedRequest(t, "client-a", "secret-a-0123456789", "GET", "/v1/x", nil, tt.signedAt)
			replay := req.Clone(req.Context())

			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())

			rec = httptest.NewRecorder()
			h.ServeHTTP(rec, replay)
			require.Equal(t, http.StatusUnauthorized, rec.Code)
			assert.Equal(t, "nonce_replayed", decodeProblem(t, rec).Code)
		})
	}
}

// Windows whose arithmetic cannot be represented are refused at start,
// naming the field; windows of years are not.
func TestWindowLimits(t *testing.T) {
	tests := []struct {
		name                  string
		tolerance, futureSkew time.Duration
		wantField             string
	}{
		{"years", 30 * year, 30 * year, ""},
		{"centuries", 150 * year, 140 * year, ""},
		{"sum past the largest duration", 200 * year, 200 * year, "timestamp.future_skew"},
		{"largest tolerance", 1<<63 - 1, 5 * time.Minute, "timestamp.tolerance"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Timestamp.Tolerance = replayguard.Duration(tt.tolerance)
			cfg.Timestamp.FutureSkew = replayguard.Duration(tt.futureSkew)
			err := cfg.WithDefaults().Validate()
			if tt.wantField == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantField)
		})
	}
}
