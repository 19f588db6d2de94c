package hmacsig_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/hmacsig"
)

func TestEveryEntryOfAnAcceptedHeaderIsTried(t *testing.T) {
	s, err := hmacsig.New([]signature.Key{{ID: "k", Secrets: [][]byte{[]byte("secret")}}})
	require.NoError(t, err)
	ts := "1700000000"
	nonce := "0123456789abcdef"
	sts := hmacsig.StringToSign("GET", "h", "/", ts, nonce, "", nil)
	m := hmac.New(sha256.New, []byte("secret"))
	m.Write([]byte(sts))
	good := "v1=" + base64.StdEncoding.EncodeToString(m.Sum(nil))
	wrong := "v1=" + base64.StdEncoding.EncodeToString(make([]byte, 32))
	entries := make([]string, 0, 43)
	for len(entries) < 40 {
		entries = append(entries, wrong)
	}
	entries = append(entries, good)
	header := strings.Join(entries, ",")
	require.LessOrEqual(t, len(header), 2048)
	r := &signature.Request{Method: "GET", Host: "h", Target: "/", Header: http.Header{
		"X-Key-Id": {"k"}, "X-Timestamp": {ts}, "X-Nonce": {nonce}, "X-Signature": {header},
	}}
	_, err = s.Verify(context.Background(), r)
	require.NoError(t, err, "the 41st entry verifies")

	r.Header["X-Signature"] = []string{strings.Join(entries[:40], ",")}
	_, err = s.Verify(context.Background(), r)
	require.ErrorIs(t, err, signature.ErrInvalid, "only wrong entries: invalid, not malformed")
}

func TestSignerHostIsWhatNetHTTPSends(t *testing.T) {
	s := &hmacsig.Signer{KeyID: "k", Secret: []byte("s")}
	r, err := http.NewRequest("GET", "http://example.com/", nil)
	require.NoError(t, err)
	r.Host = "bücher.example"
	require.ErrorContains(t, s.Sign(r, nil), "punycode")

	require.Error(t, s.Sign(&http.Request{Method: "GET", Host: "example.com", Header: http.Header{}}, nil), "no URL is an error, not a panic")

	// An IPv6 zone is not sent by net/http, so it is not signed either.
	srvSeen := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { srvSeen <- r.Host }))
	defer srv.Close()
	r, err = http.NewRequest("GET", srv.URL, nil)
	require.NoError(t, err)
	r.Host = "[fe80::1%25en0]:80"
	require.NoError(t, s.Sign(r, nil))
	resp, err := http.DefaultClient.Do(r)
	require.NoError(t, err)
	_ = resp.Body.Close()
	seen := <-srvSeen
	v, err := hmacsig.New([]signature.Key{{ID: "k", Secrets: [][]byte{[]byte("s")}}})
	require.NoError(t, err)
	_, err = v.Verify(context.Background(), &signature.Request{Method: "GET", Host: seen, Target: "/", Header: r.Header})
	require.NoError(t, err, "signed host %q matches the host the server saw", seen)
}

func TestTransportHonoursHTTPDateRetryAfter(t *testing.T) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls++
		if calls == 1 {
			w.Header().Set("Retry-After", time.Now().Add(-time.Second).UTC().Format(http.TimeFormat))
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	backoffCalled := false
	tr := &signature.Transport{
		Signer:             &hmacsig.Signer{KeyID: "k", Secret: []byte("s")},
		IdempotencyMethods: []string{"post"},
		Backoff:            func(int) time.Duration { backoffCalled = true; return time.Hour },
	}
	req, err := http.NewRequest("POST", srv.URL, strings.NewReader("x"))
	require.NoError(t, err)
	resp, err := tr.RoundTrip(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, 2, calls)
	assert.False(t, backoffCalled, "a past HTTP-date Retry-After means retry now")
}
