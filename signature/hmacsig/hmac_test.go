package hmacsig_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/hmacsig"
	"github.com/replayguard/replayguard/timestamp"
)

const (
	testKeyID  = "client-a"
	testSecret = "rg-test-secret-0001"
	testNonce  = "4f1c2d3e-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
	testTS     = "1700000000"
)

// vector is the signed part of a request, kept apart from the wire so that a
// test can sign one set of values and send another.
type vector struct {
	method, host, target, ts, nonce, idem string
	body                                  []byte
}

func baseVector() vector {
	return vector{
		method: "POST",
		host:   "API.Example.com:8443",
		target: "/v1/charges?b=2&a=1",
		ts:     testTS,
		nonce:  testNonce,
		idem:   "order-42",
		body:   []byte(`{"amount":1000,"currency":"eur"}`),
	}
}

// stringToSign builds the the hmac wire format (docs/wire-format.md) string to sign without the package's
// helpers, as an independent oracle.
func (v vector) stringToSign() string {
	sum := sha256.Sum256(v.body)
	return strings.Join([]string{
		"RG1-HMAC-SHA256",
		v.method,
		strings.ToLower(v.host),
		v.target,
		v.ts,
		v.nonce,
		v.idem,
		hex.EncodeToString(sum[:]),
	}, "\n")
}

// mac returns the base64 HMAC-SHA256 of v's string to sign under secret.
func (v vector) mac(secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(v.stringToSign()))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// request returns the request carrying v with the given X-Signature value.
func (v vector) request(keyID, sig string) *signature.Request {
	h := http.Header{}
	if keyID != "" {
		h.Set("X-Key-Id", keyID)
	}
	if v.ts != "" {
		h.Set("X-Timestamp", v.ts)
	}
	if v.nonce != "" {
		h.Set("X-Nonce", v.nonce)
	}
	if sig != "" {
		h.Set("X-Signature", sig)
	}
	if v.idem != "" {
		h.Set("Idempotency-Key", v.idem)
	}
	return &signature.Request{
		Method: v.method,
		Scheme: "https",
		Host:   v.host,
		Target: v.target,
		Header: h,
		Body:   append([]byte(nil), v.body...),
	}
}

// signed returns the request carrying v signed with testSecret.
func (v vector) signed() *signature.Request {
	return v.request(testKeyID, "v1="+v.mac(testSecret))
}

func newTestHMAC(t testing.TB, opts ...hmacsig.Option) *hmacsig.Scheme {
	t.Helper()
	s, err := hmacsig.New([]signature.Key{
		{ID: testKeyID, Secrets: [][]byte{[]byte(testSecret)}},
		{ID: "client-b", Secrets: [][]byte{[]byte("client-b-secret")}},
	}, opts...)
	require.NoError(t, err)
	return s
}

func TestStringToSignKnownAnswer(t *testing.T) {
	// SHA-256 of `{"amount":1000,"currency":"eur"}`, from
	// printf '%s' '{"amount":1000,"currency":"eur"}' | sha256sum
	const bodyHash = "4e493e4ce0e474c166303ac8affb1464ce2a54f9299ae1e25f7a4360993d22bb"
	const want = "RG1-HMAC-SHA256\n" +
		"POST\n" +
		"api.example.com:8443\n" +
		"/v1/charges?b=2&a=1\n" +
		"1700000000\n" +
		"4f1c2d3e-5a6b-4c7d-8e9f-0a1b2c3d4e5f\n" +
		"order-42\n" +
		bodyHash
	// HMAC-SHA256 of want under "rg-test-secret-0001", from
	// printf '%s' "$want" | openssl dgst -sha256 -hmac rg-test-secret-0001 -binary | openssl base64 -A
	const wantMAC = "lxO/fJ8Du17dH9IoIeHNy4l95yUWBXyGXRhlsoBcjMs="

	v := baseVector()
	got := hmacsig.StringToSign(v.method, v.host, v.target, v.ts, v.nonce, v.idem, v.body)
	require.Equal(t, want, got)
	require.Equal(t, want, v.stringToSign())
	require.False(t, strings.HasSuffix(got, "\n"), "no trailing newline")

	prefix := []byte("keep:")
	appended := hmacsig.AppendStringToSign(prefix, v.method, v.host, v.target, v.ts, v.nonce, v.idem, v.body)
	assert.Equal(t, "keep:"+want, string(appended))

	m := hmac.New(sha256.New, []byte(testSecret))
	m.Write([]byte(want))
	require.Equal(t, wantMAC, base64.StdEncoding.EncodeToString(m.Sum(nil)))
	require.Equal(t, "v1="+wantMAC, hmacsig.Sign([]byte(testSecret), []byte(want)))

	got2, err := newTestHMAC(t).Verify(context.Background(), v.request(testKeyID, "v1="+wantMAC))
	require.NoError(t, err)
	assert.Equal(t, testKeyID, got2.KeyID)
}

func TestStringToSignEmptyParts(t *testing.T) {
	const emptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	got := hmacsig.StringToSign("GET", "h", "/", "0", "0123456789abcdef", "", nil)
	assert.Equal(t, "RG1-HMAC-SHA256\nGET\nh\n/\n0\n0123456789abcdef\n\n"+emptyHash, got)
}

func TestHMACVerify(t *testing.T) {
	wantTS := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name    string
		vec     func(*vector)            // applied before signing
		req     func(*signature.Request) // applied after signing
		wantErr error
	}{
		{name: "valid"},
		{name: "host signed lower, sent mixed case", vec: func(v *vector) { v.host = "example.com" }, req: func(r *signature.Request) { r.Host = "Example.COM" }},
		{name: "host signed mixed, sent lower", req: func(r *signature.Request) { r.Host = "api.example.com:8443" }},
		{name: "no idempotency key", vec: func(v *vector) { v.idem = "" }},
		{name: "empty body", vec: func(v *vector) { v.body = nil }},
		{name: "nonce of 16 characters", vec: func(v *vector) { v.nonce = strings.Repeat("a", 16) }},
		{name: "nonce of 128 characters", vec: func(v *vector) { v.nonce = strings.Repeat("Z", 128) }},
		{name: "nonce with every allowed symbol", vec: func(v *vector) { v.nonce = "AZaz09._~-AZaz09._~-" }},
		{name: "timestamp 11 digits", vec: func(v *vector) { v.ts = "01700000000" }},

		{name: "missing key id", req: func(r *signature.Request) { r.Header.Del("X-Key-Id") }, wantErr: signature.ErrMissing},
		{name: "empty key id", req: func(r *signature.Request) { r.Header.Set("X-Key-Id", "") }, wantErr: signature.ErrMissing},
		{name: "missing signature", req: func(r *signature.Request) { r.Header.Del("X-Signature") }, wantErr: signature.ErrMissing},
		{name: "empty signature", req: func(r *signature.Request) { r.Header.Set("X-Signature", "") }, wantErr: signature.ErrMissing},
		{name: "blank signature", req: func(r *signature.Request) { r.Header.Set("X-Signature", "  ") }, wantErr: signature.ErrMissing},
		{name: "nil header", req: func(r *signature.Request) { r.Header = nil }, wantErr: signature.ErrMissing},
		{name: "unknown key", req: func(r *signature.Request) { r.Header.Set("X-Key-Id", "client-z") }, wantErr: signature.ErrKeyUnknown},
		{name: "key id differs in case", req: func(r *signature.Request) { r.Header.Set("X-Key-Id", "Client-A") }, wantErr: signature.ErrKeyUnknown},
		{name: "other configured key", req: func(r *signature.Request) { r.Header.Set("X-Key-Id", "client-b") }, wantErr: signature.ErrInvalid},

		{name: "missing timestamp", vec: func(v *vector) { v.ts = "" }, wantErr: timestamp.ErrMissing},
		{name: "timestamp with fraction", vec: func(v *vector) { v.ts = "1700000000.5" }, wantErr: timestamp.ErrMalformed},
		{name: "timestamp negative", vec: func(v *vector) { v.ts = "-1700000000" }, wantErr: timestamp.ErrMalformed},
		{name: "timestamp with plus", vec: func(v *vector) { v.ts = "+1700000000" }, wantErr: timestamp.ErrMalformed},
		{name: "timestamp with space", vec: func(v *vector) { v.ts = " 1700000000" }, wantErr: timestamp.ErrMalformed},
		{name: "timestamp in milliseconds", vec: func(v *vector) { v.ts = "1700000000000" }, wantErr: timestamp.ErrMalformed},
		{name: "timestamp as date", vec: func(v *vector) { v.ts = "2023-11-14T22:13:20Z" }, wantErr: timestamp.ErrMalformed},
		{name: "timestamp hex", vec: func(v *vector) { v.ts = "0x6553f100" }, wantErr: timestamp.ErrMalformed},

		{name: "missing nonce", vec: func(v *vector) { v.nonce = "" }, wantErr: nonce.ErrMissing},
		{name: "nonce of 15 characters", vec: func(v *vector) { v.nonce = strings.Repeat("a", 15) }, wantErr: nonce.ErrMalformed},
		{name: "nonce of 129 characters", vec: func(v *vector) { v.nonce = strings.Repeat("a", 129) }, wantErr: nonce.ErrMalformed},
		{name: "nonce with slash", vec: func(v *vector) { v.nonce = "0123456789/abcdef" }, wantErr: nonce.ErrMalformed},
		{name: "nonce with space", vec: func(v *vector) { v.nonce = "0123456789 abcdef" }, wantErr: nonce.ErrMalformed},
		{name: "nonce with plus", vec: func(v *vector) { v.nonce = "0123456789+abcdef" }, wantErr: nonce.ErrMalformed},
		{name: "nonce with equals", vec: func(v *vector) { v.nonce = "0123456789abcdef==" }, wantErr: nonce.ErrMalformed},
		{name: "nonce non-ASCII", vec: func(v *vector) { v.nonce = "0123456789abcdéf" }, wantErr: nonce.ErrMalformed},

		{name: "tampered body", req: func(r *signature.Request) { r.Body = []byte(`{"amount":9000,"currency":"eur"}`) }, wantErr: signature.ErrInvalid},
		{name: "body removed", req: func(r *signature.Request) { r.Body = nil }, wantErr: signature.ErrInvalid},
		{name: "tampered method", req: func(r *signature.Request) { r.Method = "PUT" }, wantErr: signature.ErrInvalid},
		{name: "method signed POST, sent post", req: func(r *signature.Request) { r.Method = "post" }, wantErr: signature.ErrInvalid},
		{name: "method signed POST, sent Post", req: func(r *signature.Request) { r.Method = "Post" }, wantErr: signature.ErrInvalid},
		{name: "method signed POST, sent pOST", req: func(r *signature.Request) { r.Method = "pOST" }, wantErr: signature.ErrInvalid},
		{name: "method signed post, sent POST", vec: func(v *vector) { v.method = "post" }, req: func(r *signature.Request) { r.Method = "POST" }, wantErr: signature.ErrInvalid},
		{name: "method signed and sent lower case", vec: func(v *vector) { v.method = "post" }},
		{name: "tampered path", req: func(r *signature.Request) { r.Target = "/v1/refunds?b=2&a=1" }, wantErr: signature.ErrInvalid},
		{name: "tampered query", req: func(r *signature.Request) { r.Target = "/v1/charges?b=3&a=1" }, wantErr: signature.ErrInvalid},
		{name: "query reordered", req: func(r *signature.Request) { r.Target = "/v1/charges?a=1&b=2" }, wantErr: signature.ErrInvalid},
		{name: "query dropped", req: func(r *signature.Request) { r.Target = "/v1/charges" }, wantErr: signature.ErrInvalid},
		{name: "path case changed", req: func(r *signature.Request) { r.Target = "/V1/charges?b=2&a=1" }, wantErr: signature.ErrInvalid},
		{name: "tampered host", req: func(r *signature.Request) { r.Host = "api.example.com:8444" }, wantErr: signature.ErrInvalid},
		{name: "tampered idempotency key", req: func(r *signature.Request) { r.Header.Set("Idempotency-Key", "order-43") }, wantErr: signature.ErrInvalid},
		{name: "idempotency key removed", req: func(r *signature.Request) { r.Header.Del("Idempotency-Key") }, wantErr: signature.ErrInvalid},
		{name: "idempotency key added", vec: func(v *vector) { v.idem = "" }, req: func(r *signature.Request) { r.Header.Set("Idempotency-Key", "order-42") }, wantErr: signature.ErrInvalid},
		{name: "tampered timestamp", req: func(r *signature.Request) { r.Header.Set("X-Timestamp", "1700000001") }, wantErr: signature.ErrInvalid},
		{name: "timestamp with leading zero", req: func(r *signature.Request) { r.Header.Set("X-Timestamp", "01700000000") }, wantErr: signature.ErrInvalid},
		{name: "tampered nonce", req: func(r *signature.Request) { r.Header.Set("X-Nonce", "4f1c2d3e-5a6b-4c7d-8e9f-0a1b2c3d4e5e") }, wantErr: signature.ErrInvalid},
	}
	s := newTestHMAC(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := baseVector()
			if tt.vec != nil {
				tt.vec(&v)
			}
			r := v.signed()
			if tt.req != nil {
				tt.req(r)
			}
			got, err := s.Verify(context.Background(), r)
			if tt.wantErr != nil {
				require.Error(t, err)
				assert.ErrorIs(t, err, tt.wantErr)
				assert.Equal(t, signature.Verified{}, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, testKeyID, got.KeyID)
			assert.Equal(t, testKeyID, got.KeyID)
			assert.Equal(t, v.nonce, got.ReplayKey)
			assert.True(t, wantTS.Equal(got.Timestamp), "timestamp %v", got.Timestamp)
			assert.Empty(t, got.IdempotencyKey)
		})
	}
}

func TestHMACVerifyErrorsDoNotLeak(t *testing.T) {
	s := newTestHMAC(t)
	v := baseVector()
	good := v.mac(testSecret)
	for _, sig := range []string{"v1=" + good[:43], "v1=" + v.mac("wrong-secret")} {
		r := v.request(testKeyID, sig)
		r.Body = []byte("tampered")
		_, err := s.Verify(context.Background(), r)
		require.Error(t, err)
		assert.NotContains(t, err.Error(), testSecret)
		assert.NotContains(t, err.Error(), strings.TrimPrefix(sig, "v1="))
		assert.NotContains(t, err.Error(), good[:20])
	}
}

func TestHMACSignatureEntries(t *testing.T) {
	v := baseVector()
	good := v.mac(testSecret)         // "lxO/fJ8D…": contains '/'
	bad := v.mac("some-other-secret") // well-formed, wrong
	require.Contains(t, good, "/")
	rawGood, err := base64.StdEncoding.DecodeString(good)
	require.NoError(t, err)

	unpadded := strings.TrimSuffix(good, "=")
	urlSafe := strings.NewReplacer("+", "-", "/", "_").Replace(good)
	short := base64.StdEncoding.EncodeToString(rawGood[:31])
	long := base64.StdEncoding.EncodeToString(append(append([]byte(nil), rawGood...), 0))
	// Same 32 bytes with non-zero padding bits in the last character.
	nonCanonical := good[:42] + string(rune(good[42]+1)) + "="
	doublePad := good[:42] + "=="
	lenient, err := base64.StdEncoding.DecodeString(nonCanonical)
	require.NoError(t, err)
	require.Equal(t, rawGood, lenient, "non-canonical form must decode to the same bytes")

	tests := []struct {
		name    string
		lines   []string
		wantErr error
	}{
		{name: "single", lines: []string{"v1=" + good}},
		{name: "second of two verifies", lines: []string{"v1=" + bad + ",v1=" + good}},
		{name: "space after comma", lines: []string{"v1=" + bad + ", v1=" + good}},
		{name: "spaces around comma", lines: []string{"v1=" + bad + "  ,   v1=" + good + " "}},
		{name: "tab after comma", lines: []string{"v1=" + bad + ",\tv1=" + good}},
		{name: "first of two verifies", lines: []string{"v1=" + good + ",v1=" + bad}},
		{name: "empty entries", lines: []string{",,v1=" + good + ",,"}},
		{name: "other prefixes ignored", lines: []string{"v0=" + bad + ",v2=" + bad + ",v1=" + good}},
		{name: "unparsable other prefix ignored", lines: []string{"v2=%%%,v1=" + good}},
		{name: "bad base64 then valid", lines: []string{"v1=!!!not-base64!!!,v1=" + good}},
		{name: "unpadded then valid", lines: []string{"v1=" + unpadded + ",v1=" + good}},
		{name: "wrong length then valid", lines: []string{"v1=" + short + ",v1=" + good}},
		{name: "valid then bad base64", lines: []string{"v1=" + good + ",v1=@@@"}},
		{name: "split over two fields", lines: []string{"v1=" + bad, "v1=" + good}},
		{name: "first field empty", lines: []string{"", "v1=" + good}},
		{name: "first field other prefix", lines: []string{"v2=" + bad, "v1=" + good}},
		{name: "first field unparsable", lines: []string{"v1=***", "v1=" + good}},

		{name: "only bad base64", lines: []string{"v1=!!!not-base64!!!"}, wantErr: signature.ErrMalformed},
		{name: "only unpadded", lines: []string{"v1=" + unpadded}, wantErr: signature.ErrMalformed},
		{name: "only url-safe alphabet", lines: []string{"v1=" + urlSafe}, wantErr: signature.ErrMalformed},
		{name: "only 31 bytes", lines: []string{"v1=" + short}, wantErr: signature.ErrMalformed},
		{name: "only 33 bytes", lines: []string{"v1=" + long}, wantErr: signature.ErrMalformed},
		{name: "only hex", lines: []string{"v1=" + hex.EncodeToString(rawGood)}, wantErr: signature.ErrMalformed},
		{name: "only empty v1", lines: []string{"v1="}, wantErr: signature.ErrMalformed},
		{name: "only double padding", lines: []string{"v1=" + doublePad}, wantErr: signature.ErrMalformed},
		{name: "only non-canonical padding bits", lines: []string{"v1=" + nonCanonical}, wantErr: signature.ErrMalformed},
		{name: "wrong and unparsable", lines: []string{"v1=" + bad + ",v1=???"}, wantErr: signature.ErrMalformed},
		{name: "unparsable in second field", lines: []string{"v1=" + bad, "v1=???"}, wantErr: signature.ErrMalformed},

		{name: "only wrong", lines: []string{"v1=" + bad}, wantErr: signature.ErrInvalid},
		{name: "two wrong", lines: []string{"v1=" + bad + ", v1=" + v.mac("third")}, wantErr: signature.ErrInvalid},
		{name: "wrong with unparsable other prefix", lines: []string{"v1=" + bad + ",v2=???"}, wantErr: signature.ErrInvalid},

		{name: "only v2", lines: []string{"v2=" + good}, wantErr: signature.ErrMissing},
		{name: "only v0", lines: []string{"v0=" + good}, wantErr: signature.ErrMissing},
		{name: "upper-case V1 is another prefix", lines: []string{"V1=" + good}, wantErr: signature.ErrMissing},
		{name: "bare value without prefix", lines: []string{good}, wantErr: signature.ErrMissing},
		{name: "only commas", lines: []string{",,,"}, wantErr: signature.ErrMissing},
		{name: "two empty fields", lines: []string{"", ""}, wantErr: signature.ErrMissing},
	}
	s := newTestHMAC(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := v.request(testKeyID, "")
			r.Header["X-Signature"] = tt.lines
			got, err := s.Verify(context.Background(), r)
			if tt.wantErr != nil {
				require.Error(t, err)
				assert.ErrorIs(t, err, tt.wantErr)
				for _, other := range []error{signature.ErrMissing, signature.ErrMalformed, signature.ErrInvalid, signature.ErrKeyUnknown} {
					if other != tt.wantErr {
						assert.NotErrorIs(t, err, other)
					}
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, testKeyID, got.KeyID)
			assert.Equal(t, testNonce, got.ReplayKey)
		})
	}
}

func TestHMACRotation(t *testing.T) {
	s, err := hmacsig.New([]signature.Key{
		{ID: testKeyID, Secrets: [][]byte{[]byte("secret-new"), []byte("secret-old")}},
		{ID: "client-b", Secrets: [][]byte{[]byte("client-b-secret")}},
	})
	require.NoError(t, err)
	v := baseVector()
	tests := []struct {
		name    string
		secret  string
		wantErr error
	}{
		{name: "new secret", secret: "secret-new"},
		{name: "old secret", secret: "secret-old"},
		{name: "unrelated secret", secret: "secret-other", wantErr: signature.ErrInvalid},
		{name: "other key's secret", secret: "client-b-secret", wantErr: signature.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Verify(context.Background(), v.request(testKeyID, "v1="+v.mac(tt.secret)))
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
				return
			}
			assert.NoError(t, err)
		})
	}
	t.Run("entries signed by both secrets", func(t *testing.T) {
		sig := "v1=" + v.mac("secret-other") + ",v1=" + v.mac("secret-old")
		_, err := s.Verify(context.Background(), v.request(testKeyID, sig))
		assert.NoError(t, err)
	})
}

func TestNewHMACCopiesSecrets(t *testing.T) {
	secret := []byte(testSecret)
	s, err := hmacsig.New([]signature.Key{{ID: testKeyID, Secrets: [][]byte{secret}}})
	require.NoError(t, err)
	copy(secret, "XXXXXXXXXXXXXXXXXXX")
	_, err = s.Verify(context.Background(), baseVector().signed())
	assert.NoError(t, err)
}

func TestHMACCustomHeaders(t *testing.T) {
	v := baseVector()
	sig := "v1=" + v.mac(testSecret)
	custom := func() *signature.Request {
		r := v.request("", "")
		r.Header.Set("X-Api-Key", testKeyID)
		r.Header.Set("X-Request-Time", v.ts)
		r.Header.Set("X-Request-Id", v.nonce)
		r.Header.Set("X-Api-Signature", sig)
		r.Header.Del("X-Timestamp")
		r.Header.Del("X-Nonce")
		return r
	}

	s := newTestHMAC(t, hmacsig.WithHeaders(hmacsig.Headers{
		KeyID:     "x-api-key",
		Timestamp: "x-request-time",
		Nonce:     "X-REQUEST-ID",
		Signature: "X-Api-Signature",
	}))
	assert.Equal(t, hmacsig.Headers{
		KeyID:     "X-Api-Key",
		Timestamp: "X-Request-Time",
		Nonce:     "X-Request-Id",
		Signature: "X-Api-Signature",
	}, s.Headers())

	got, err := s.Verify(context.Background(), custom())
	require.NoError(t, err)
	assert.Equal(t, testKeyID, got.KeyID)

	_, err = s.Verify(context.Background(), v.signed())
	assert.ErrorIs(t, err, signature.ErrMissing, "default names are not read")

	tests := []struct {
		name    string
		del     string
		wantErr error
	}{
		{name: "key id", del: "X-Api-Key", wantErr: signature.ErrMissing},
		{name: "signature", del: "X-Api-Signature", wantErr: signature.ErrMissing},
		{name: "timestamp", del: "X-Request-Time", wantErr: timestamp.ErrMissing},
		{name: "nonce", del: "X-Request-Id", wantErr: nonce.ErrMissing},
	}
	for _, tt := range tests {
		t.Run("missing "+tt.name, func(t *testing.T) {
			r := custom()
			r.Header.Del(tt.del)
			_, err := s.Verify(context.Background(), r)
			assert.ErrorIs(t, err, tt.wantErr)
			assert.Contains(t, err.Error(), tt.del)
		})
	}

	t.Run("partial override keeps defaults", func(t *testing.T) {
		s := newTestHMAC(t, hmacsig.WithHeaders(hmacsig.Headers{Signature: "Signature"}))
		assert.Equal(t, hmacsig.Headers{
			KeyID: "X-Key-Id", Timestamp: "X-Timestamp", Nonce: "X-Nonce", Signature: "Signature",
		}, s.Headers())
		r := v.request(testKeyID, "")
		r.Header.Set("Signature", sig)
		_, err := s.Verify(context.Background(), r)
		assert.NoError(t, err)
	})

	t.Run("defaults", func(t *testing.T) {
		assert.Equal(t, hmacsig.Headers{
			KeyID: "X-Key-Id", Timestamp: "X-Timestamp", Nonce: "X-Nonce", Signature: "X-Signature",
		}, newTestHMAC(t).Headers())
	})
}

func TestNewHMACConfigErrors(t *testing.T) {
	sec := [][]byte{[]byte("s")}
	tests := []struct {
		name string
		keys []signature.Key
		want string
	}{
		{name: "nil keys", keys: nil, want: "no keys"},
		{name: "no keys", keys: []signature.Key{}, want: "no keys"},
		{name: "empty id", keys: []signature.Key{{ID: "a", Secrets: sec}, {Secrets: sec}}, want: "keys[1]: empty id"},
		{name: "duplicate id", keys: []signature.Key{{ID: "a", Secrets: sec}, {ID: "a", Secrets: sec}}, want: `duplicate id "a"`},
		{name: "no secrets", keys: []signature.Key{{ID: "a"}}, want: `key "a": no secrets`},
		{name: "empty secrets slice", keys: []signature.Key{{ID: "a", Secrets: [][]byte{}}}, want: `key "a": no secrets`},
		{name: "empty secret", keys: []signature.Key{{ID: "a", Secrets: [][]byte{[]byte("s"), {}}}}, want: `key "a": secrets[1] is empty`},
		{name: "nil secret", keys: []signature.Key{{ID: "a", Secrets: [][]byte{nil}}}, want: `key "a": secrets[0] is empty`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := hmacsig.New(tt.keys)
			require.Error(t, err)
			assert.Nil(t, s)
			assert.Contains(t, err.Error(), tt.want)
			assert.True(t, strings.HasPrefix(err.Error(), "signature: "), err.Error())
		})
	}
}

func TestParseSecret(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []byte
		wantErr bool
	}{
		{name: "plain", in: "s3cr3t", want: []byte("s3cr3t")},
		{name: "plain utf-8", in: "gähn", want: []byte("gähn")},
		{name: "plain with spaces", in: " a b ", want: []byte(" a b ")},
		{name: "base64 word without colon is plain", in: "base64", want: []byte("base64")},
		{name: "upper-case prefix is plain", in: "BASE64:AAEC", want: []byte("BASE64:AAEC")},
		{name: "whsec is plain here", in: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", want: []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")},
		{name: "base64", in: "base64:AAECA/8=", want: []byte{0, 1, 2, 3, 0xff}},
		{name: "base64 text", in: "base64:aGVsbG8=", want: []byte("hello")},
		{name: "base64 bad", in: "base64:not base64!", wantErr: true},
		{name: "base64 unpadded", in: "base64:aGVsbG8", wantErr: true},
		{name: "base64 url alphabet", in: "base64:AAECA_8=", wantErr: true},
		{name: "base64 empty", in: "base64:", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := signature.ParseSecret(tt.in)
			if tt.wantErr {
				require.Error(t, err)
				assert.Nil(t, got)
				assert.True(t, strings.HasPrefix(err.Error(), "signature: secret: "), err.Error())
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}

	t.Run("decoded secret verifies", func(t *testing.T) {
		raw := []byte{0, 1, 2, 0xfe, 0xff, '\n', 0}
		sec, err := signature.ParseSecret("base64:" + base64.StdEncoding.EncodeToString(raw))
		require.NoError(t, err)
		s, err := hmacsig.New([]signature.Key{{ID: testKeyID, Secrets: [][]byte{sec}}})
		require.NoError(t, err)
		v := baseVector()
		_, err = s.Verify(context.Background(), v.request(testKeyID, "v1="+v.mac(string(raw))))
		assert.NoError(t, err)
	})
}

func TestHMACVerifyConcurrent(t *testing.T) {
	s, err := hmacsig.New([]signature.Key{
		{ID: testKeyID, Secrets: [][]byte{[]byte("rotated-out"), []byte(testSecret)}},
		{ID: "client-b", Secrets: [][]byte{[]byte("client-b-secret")}},
	})
	require.NoError(t, err)

	const goroutines, rounds = 32, 50
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*rounds*2)
	for g := range goroutines {
		wg.Go(func() {
			for i := range rounds {
				v := baseVector()
				v.nonce = fmt.Sprintf("nonce-%04d-%04d-xxxx", g, i)
				v.body = fmt.Appendf(nil, `{"g":%d,"i":%d}`, g, i)
				keyID, secret := testKeyID, testSecret
				if g%2 == 1 {
					keyID, secret = "client-b", "client-b-secret"
				}
				got, err := s.Verify(context.Background(), v.request(keyID, "v1="+v.mac(secret)))
				switch {
				case err != nil:
					errs <- fmt.Errorf("goroutine %d round %d: %w", g, i, err)
				case got.KeyID != keyID || got.ReplayKey != v.nonce:
					errs <- fmt.Errorf("goroutine %d round %d: got %+v", g, i, got)
				}

				wrong := v.request(keyID, "v1="+v.mac(secret))
				wrong.Body = append(wrong.Body, ' ')
				if _, err := s.Verify(context.Background(), wrong); !errors.Is(err, signature.ErrInvalid) {
					errs <- fmt.Errorf("goroutine %d round %d: tampered request: %v", g, i, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func ExampleSigner() {
	secret := []byte("rg-example-secret")
	signer := &hmacsig.Signer{
		KeyID:    "client-a",
		Secret:   secret,
		Now:      func() time.Time { return time.Unix(1_700_000_000, 0) },
		NewNonce: func() string { return "3b0c7a6e-4a7f-4bde-9a51-2f1e3c5d7a90" },
	}
	body := []byte(`{"amount":1000}`)
	req, _ := http.NewRequest(http.MethodPost, "https://api.example.com/v1/charges", nil)
	req.Header.Set("Idempotency-Key", "order-42")
	if err := signer.Sign(req, body); err != nil {
		fmt.Println("sign:", err)
		return
	}
	for _, h := range []string{"X-Key-Id", "X-Timestamp", "X-Nonce", "X-Signature"} {
		fmt.Printf("%s: %s\n", h, req.Header.Get(h))
	}

	verifier, err := hmacsig.New([]signature.Key{{ID: "client-a", Secrets: [][]byte{secret}}})
	if err != nil {
		fmt.Println("config:", err)
		return
	}
	received := &signature.Request{
		Method: req.Method, Scheme: "https", Host: req.Host,
		Target: req.URL.RequestURI(), Header: req.Header, Body: body,
	}
	v, err := verifier.Verify(context.Background(), received)
	if err != nil {
		fmt.Println("verify:", err)
		return
	}
	fmt.Println("verified:", v.KeyID, v.Timestamp.Unix(), v.ReplayKey)

	received.Body = []byte(`{"amount":9000}`)
	_, err = verifier.Verify(context.Background(), received)
	fmt.Println("tampered body rejected:", errors.Is(err, signature.ErrInvalid))
	// Output:
	// X-Key-Id: client-a
	// X-Timestamp: 1700000000
	// X-Nonce: 3b0c7a6e-4a7f-4bde-9a51-2f1e3c5d7a90
	// X-Signature: v1=jof8IDd9IKhO3G3TRzuVYEFUJ/v/uhbj0k55Ra92nR4=
	// verified: client-a 1700000000 3b0c7a6e-4a7f-4bde-9a51-2f1e3c5d7a90
	// tampered body rejected: true
}
