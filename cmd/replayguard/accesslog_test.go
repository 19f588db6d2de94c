package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/config"
)

func TestLogLineLimiter(t *testing.T) {
	now := time.Unix(1_750_000_000, 0)
	l := newLineLimiter(3, func() time.Time { return now })
	for i := 0; i < 3; i++ {
		ok, dropped := l.allow()
		require.True(t, ok, "the burst is one second's worth")
		assert.Zero(t, dropped)
	}
	for i := 0; i < 5; i++ {
		ok, _ := l.allow()
		assert.False(t, ok)
	}
	assert.Equal(t, uint64(5), l.dropped.Load())

	now = now.Add(400 * time.Millisecond)
	ok, dropped := l.allow()
	require.True(t, ok, "a third of a second (and a bit) earns one line")
	assert.Equal(t, uint64(5), dropped, "the first line after a gap says how many were dropped")
	ok, _ = l.allow()
	assert.False(t, ok)

	now = now.Add(time.Hour)
	for i := 0; i < 3; i++ {
		ok, _ = l.allow()
		assert.True(t, ok)
	}
	ok, _ = l.allow()
	assert.False(t, ok, "an idle hour still earns one second's worth")
	assert.Equal(t, uint64(7), l.dropped.Load())
}

func TestLogClientAddr(t *testing.T) {
	trusted, err := replayguard.ParseTrustedProxies([]string{"10.0.0.0/8", "::1"})
	require.NoError(t, err)
	for _, tc := range []struct {
		values []string
		want   string
	}{
		{nil, ""},
		{[]string{"203.0.113.7"}, "203.0.113.7"},
		{[]string{"198.51.100.1, 203.0.113.7"}, "203.0.113.7"},           // the first entry is the client's own claim
		{[]string{"198.51.100.1, 203.0.113.7, 10.0.0.2"}, "203.0.113.7"}, // a trusted hop is skipped
		{[]string{"198.51.100.1", "203.0.113.7,10.0.0.2 ,10.1.1.1"}, "203.0.113.7"},
		{[]string{"10.0.0.3, 10.0.0.2"}, "10.0.0.3"}, // all trusted: the first
		{[]string{"203.0.113.7:4711"}, "203.0.113.7"},
		{[]string{"[2001:db8::1]:443"}, "2001:db8::1"},
		{[]string{"::ffff:203.0.113.7"}, "203.0.113.7"},
		{[]string{"203.0.113.7, not-an-address"}, ""},
		{[]string{"not-an-address, 203.0.113.7"}, "203.0.113.7"},
	} {
		assert.Equal(t, tc.want, clientAddr(trusted, tc.values), "%q", tc.values)
	}
}

func TestLogRequestID(t *testing.T) {
	assert.Equal(t, "req-1_A.b", requestID("req-1_A.b"))
	assert.Equal(t, strings.Repeat("r", maxRequestIDBytes), requestID(strings.Repeat("r", maxRequestIDBytes)))
	for _, insane := range []string{"", strings.Repeat("r", maxRequestIDBytes+1), "with space", "tab\there", "caf\xc3\xa9", "nul\x00"} {
		id := requestID(insane)
		assert.NotEqual(t, insane, id)
		assert.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, id, "a UUID replaces %q", insane)
	}
	assert.NotEqual(t, requestID(""), requestID(""))
}

func TestLogPathAndKeyDigest(t *testing.T) {
	assert.Equal(t, "/v1/charges", pathOf("/v1/charges?token=secret"))
	assert.Equal(t, "/v1/a%2Fb", pathOf("/v1/a%2Fb"))
	assert.Equal(t, "/v1/x", pathOf("http://api.example.com/v1/x?q=1"))
	assert.Len(t, pathOf("/"+strings.Repeat("p", 5000)), maxLoggedBytes)

	digest := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return hex.EncodeToString(sum[:])[:8]
	}
	h := http.Header{}
	assert.Empty(t, keyDigest("", h))
	h.Set("Idempotency-Key", "op-42")
	assert.Equal(t, digest("op-42"), keyDigest("", h))
	h.Set("Idempotency-Key", `"op-42"`)
	assert.Equal(t, digest("op-42"), keyDigest("", h), "an sf-string names the same key as the bare token")
	assert.Equal(t, digest("msg_1"), keyDigest("msg_1", h), "a webhook delivery's id is its key")
}

func TestLogLevelAndFormat(t *testing.T) {
	var buf bytes.Buffer
	l := newLogger(&buf, config.Log{Level: "warn", Format: "text"}.WithDefaults())
	l.Info("hidden")
	l.Warn("shown", "k", "v w")
	assert.Equal(t, "level=WARN msg=shown k=\"v w\"\n", strings.SplitN(buf.String(), " ", 2)[1])

	buf.Reset()
	l = newLogger(&buf, config.Log{Level: "debug"}.WithDefaults())
	l.Debug("shown")
	assert.Contains(t, buf.String(), `"level":"DEBUG","msg":"shown"`)
}

// TestLogRejectionsBound: rejections_per_second bounds rejection lines at
// its default, and 0 lifts the bound.
func TestLogRejectionsBound(t *testing.T) {
	reject := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		replayguard.RequestTraceFrom(r.Context()).Rejected("signature_invalid")
		w.WriteHeader(http.StatusUnauthorized)
	})
	const n = 500
	run := func(l config.Log) (lines int, dropped float64) {
		var buf bytes.Buffer
		a := newAccessLog(newLogger(&buf, l), l, nil)
		h := a.handler(implicitRoute, proxyEndpoint, reject)
		for i := 0; i < n; i++ {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/v1/x", nil))
		}
		return strings.Count(buf.String(), `"msg":"request"`), a.droppedLines()
	}
	lines, dropped := run(config.Log{}.WithDefaults())
	assert.Less(t, lines, n)
	assert.GreaterOrEqual(t, lines, config.DefaultRejectionsPerSecond)
	assert.Equal(t, float64(n), float64(lines)+dropped)

	zero := 0
	lines, dropped = run(config.Log{RejectionsPerSecond: &zero}.WithDefaults())
	assert.Equal(t, n, lines)
	assert.Zero(t, dropped)
}

// TestRequestIDHeaderCanonical: the request id header is read and set by
// map index, which matches what clients and upstreams send only in
// canonical form.
func TestRequestIDHeaderCanonical(t *testing.T) {
	assert.Equal(t, http.CanonicalHeaderKey(headerRequestID), headerRequestID)
}
