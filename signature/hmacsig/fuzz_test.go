package hmacsig_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/hmacsig"
	"github.com/replayguard/replayguard/timestamp"
)

// macToken in a fuzzed X-Signature value is replaced by the correct MAC, so
// that the fuzzer reaches the accepting paths it could never forge.
const macToken = "{mac}"

var (
	nonceRE     = regexp.MustCompile(`^[A-Za-z0-9._~-]{16,128}$`)
	timestampRE = regexp.MustCompile(`^[0-9]{1,11}$`)
	fuzzSecrets = map[string]string{testKeyID: testSecret, "client-b": "client-b-secret"}
)

// sigEntries returns the v1 values of X-Signature field lines as the hmac wire format (docs/wire-format.md)
// reads them: comma-separated entries, optional spaces, other prefixes ignored.
func sigEntries(lines []string) []string {
	var out []string
	for _, line := range lines {
		for _, e := range strings.Split(line, ",") {
			if v, ok := strings.CutPrefix(strings.Trim(e, " \t"), "v1="); ok {
				out = append(out, v)
			}
		}
	}
	return out
}

// decodeV1 decodes a v1 value: padded standard base64 of exactly 32 bytes.
func decodeV1(v string) ([]byte, bool) {
	if len(v) != 44 || strings.ContainsAny(v, "\r\n") {
		return nil, false
	}
	b, err := base64.StdEncoding.Strict().DecodeString(v)
	if err != nil || len(b) != sha256.Size {
		return nil, false
	}
	return b, true
}

func totalLen(lines []string) int {
	n := 0
	for _, l := range lines {
		n += len(l)
	}
	return n
}

// sentinels lists every error Verify may wrap.
var sentinels = []error{
	signature.ErrMissing, signature.ErrMalformed, signature.ErrKeyUnknown, signature.ErrInvalid,
	timestamp.ErrMissing, timestamp.ErrMalformed, nonce.ErrMissing, nonce.ErrMalformed,
}

func requireOneSentinel(t *testing.T, err error) {
	t.Helper()
	n := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("error %q wraps %d sentinels, want exactly 1", err, n)
	}
}

func FuzzHMACVerify(f *testing.F) {
	body := []byte(`{"amount":1000}`)
	f.Add("v1="+macToken, testKeyID, testTS, testNonce, body)
	f.Add("v1="+macToken, "client-b", "0", strings.Repeat("a", 16), []byte{})
	f.Add("v1=AAAA, v1="+macToken, testKeyID, "99999999999", strings.Repeat("~", 128), body)
	f.Add("v1=lxO/fJ8Du17dH9IoIeHNy4l95yUWBXyGXRhlsoBcjMs=\nv1="+macToken, testKeyID, testTS, testNonce, body)
	f.Add("v2="+macToken, testKeyID, testTS, testNonce, body)
	f.Add("v1="+macToken, "client-z", testTS, testNonce, body)
	f.Add("v1="+macToken, "", testTS, testNonce, body)
	f.Add("v1="+macToken, testKeyID, "", testNonce, body)
	f.Add("v1="+macToken, testKeyID, "170000000000", testNonce, body)
	f.Add("v1="+macToken, testKeyID, "-1", testNonce, body)
	f.Add("v1="+macToken, testKeyID, testTS, "", body)
	f.Add("v1="+macToken, testKeyID, testTS, strings.Repeat("a", 15), body)
	f.Add("v1="+macToken, testKeyID, testTS, strings.Repeat("a", 129), body)
	f.Add("v1="+macToken, testKeyID, testTS, "0123456789 abcdef", body)
	f.Add("v1=", testKeyID, testTS, testNonce, body)
	f.Add("", testKeyID, testTS, testNonce, body)
	f.Add(",,,", testKeyID, testTS, testNonce, body)
	f.Add("v1=!!!!", testKeyID, testTS, testNonce, body)

	s := newTestHMAC(f)
	f.Fuzz(func(t *testing.T, sigTmpl, keyID, ts, nonceVal string, body []byte) {
		v := vector{method: "POST", host: "api.example.com", target: "/v1/x?y=1", ts: ts, nonce: nonceVal, body: body}
		secret, known := fuzzSecrets[keyID]
		if !known {
			secret = testSecret
		}
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(v.stringToSign()))
		correct := m.Sum(nil)
		lines := strings.Split(strings.ReplaceAll(sigTmpl, macToken, base64.StdEncoding.EncodeToString(correct)), "\n")

		r := &signature.Request{Method: v.method, Host: v.host, Target: v.target, Body: body, Header: http.Header{
			"X-Key-Id":    {keyID},
			"X-Timestamp": {ts},
			"X-Nonce":     {nonceVal},
			"X-Signature": lines,
		}}
		got, err := s.Verify(context.Background(), r)

		entries := sigEntries(lines)
		hasCorrect := false
		for _, e := range entries {
			if b, ok := decodeV1(e); ok && hmac.Equal(b, correct) {
				hasCorrect = true
			}
		}
		wellFormed := known && timestampRE.MatchString(ts) && nonceRE.MatchString(nonceVal)

		if err == nil {
			if !wellFormed || !hasCorrect {
				t.Fatalf("accepted without a correct MAC: key=%q ts=%q nonce=%q sig=%q", keyID, ts, nonceVal, lines)
			}
			if got.KeyID != keyID || got.Subject != "" || got.ReplayKey != nonceVal {
				t.Fatalf("verified fields %+v for key %q nonce %q", got, keyID, nonceVal)
			}
			return
		}
		requireOneSentinel(t, err)
		if (got != signature.Verified{}) {
			t.Fatalf("non-zero Verified %+v with error %v", got, err)
		}
		if wellFormed && hasCorrect && len(entries) <= 8 && totalLen(lines) <= 2048 {
			t.Fatalf("rejected a correct MAC: %v; sig=%q", err, lines)
		}
	})
}

// FuzzHMACSignatureHeader checks the outcome of every X-Signature value on
// an otherwise valid request against the hmac wire format (docs/wire-format.md)'s rules.
func FuzzHMACSignatureHeader(f *testing.F) {
	v := baseVector()
	good := v.mac(testSecret)
	for _, seed := range []string{
		"v1=" + macToken,
		"v1=" + good[:43],
		"v1=" + good[:42] + "t=",
		"v1=" + good + "=",
		"v1=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"v1=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=",
		"v1=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
		"v1=" + strings.NewReplacer("/", "_").Replace(good),
		"v1=xx, v1=" + macToken,
		"v1=xx ,\tv1=" + macToken + " ",
		"v0=" + macToken + ",v2=" + macToken,
		"v1=" + macToken + "\nv1=zz",
		"\nv1=" + macToken,
		"V1=" + macToken,
		macToken,
		" ",
		",",
		"v1=",
		"v1==",
		"",
	} {
		f.Add(seed)
	}
	s := newTestHMAC(f)
	f.Fuzz(func(t *testing.T, sigTmpl string) {
		lines := strings.Split(strings.ReplaceAll(sigTmpl, macToken, good), "\n")
		r := v.request(testKeyID, "")
		r.Header["X-Signature"] = lines
		_, err := s.Verify(context.Background(), r)

		entries := sigEntries(lines)
		want := signature.ErrMissing
		if len(entries) > 0 {
			want = signature.ErrInvalid
		}
		for _, e := range entries {
			if _, ok := decodeV1(e); !ok {
				want = signature.ErrMalformed
			}
		}
		for _, e := range entries {
			if e == good {
				want = nil
			}
		}

		if err == nil {
			if want != nil {
				t.Fatalf("accepted %q, want %v", lines, want)
			}
			return
		}
		requireOneSentinel(t, err)
		if want == nil {
			if len(entries) <= 8 && totalLen(lines) <= 2048 {
				t.Fatalf("rejected %q containing the correct MAC: %v", lines, err)
			}
			return
		}
		if len(entries) > 8 || totalLen(lines) > 2048 {
			if !errors.Is(err, want) && !errors.Is(err, signature.ErrMalformed) {
				t.Fatalf("%q: got %v, want %v or a size limit", lines, err, want)
			}
			return
		}
		if !errors.Is(err, want) {
			t.Fatalf("%q: got %v, want %v", lines, err, want)
		}
	})
}

func FuzzValidNonce(f *testing.F) {
	for _, seed := range []string{
		"", "a", strings.Repeat("a", 15), strings.Repeat("a", 16), strings.Repeat("a", 128), strings.Repeat("a", 129),
		testNonce, "AZaz09._~-AZaz09._~-", "0123456789abcde/", "0123456789abcde ", "0123456789abcde+",
		"0123456789abcdé", "0123456789abcdef\n", "0123456789abcdef\x00", "%30123456789abcdef",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, n string) {
		if got, want := hmacsig.ValidNonce(n), nonceRE.MatchString(n); got != want {
			t.Fatalf("ValidNonce(%q) = %v, want %v", n, got, want)
		}
	})
}

func FuzzParseSecret(f *testing.F) {
	for _, seed := range []string{
		"", "s", "base64:", "base64:AA==", "base64:AAECA/8=", "base64:aGVsbG8", "base64:!!", "base64:AA==\n",
		"base64", "BASE64:AA==", "base64:base64:AA==", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "\x00",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := signature.ParseSecret(s)
		var want []byte
		wantOK := false
		if rest, ok := strings.CutPrefix(s, "base64:"); ok {
			b, derr := base64.StdEncoding.DecodeString(rest)
			want, wantOK = b, derr == nil && len(b) > 0
		} else {
			want, wantOK = []byte(s), s != ""
		}
		if !wantOK {
			if err == nil {
				t.Fatalf("ParseSecret(%q) = %x, want an error", s, got)
			}
			if got != nil {
				t.Fatalf("ParseSecret(%q) returned %x with error %v", s, got, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("ParseSecret(%q): %v", s, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("ParseSecret(%q) = %x, want %x", s, got, want)
		}
	})
}
