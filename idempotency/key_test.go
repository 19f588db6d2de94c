package idempotency_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/idempotency"
)

func TestParseKey(t *testing.T) {
	escaped255 := `"` + strings.Repeat(`\"`, 10) + strings.Repeat("a", 245) + `"`
	tests := []struct {
		name   string
		values []string
		want   string
		err    error
	}{
		{name: "bare", values: []string{"abc"}, want: "abc"},
		{name: "sf-string", values: []string{`"abc"`}, want: "abc"},
		{name: "escapes", values: []string{`"a\"b\\c"`}, want: `a"b\c`},
		{name: "bare with inner space", values: []string{"a b"}, want: "a b"},
		{name: "bare with quote inside", values: []string{`a"b`}, want: `a"b`},
		{name: "bare trimmed", values: []string{"  abc \t"}, want: "abc"},
		{name: "sf-string trimmed", values: []string{` "abc"  `}, want: "abc"},
		{name: "sf-string keeps inner spaces", values: []string{`" abc "`}, want: " abc "},
		{name: "uuid", values: []string{"8e03978e-40d5-43e8-bc93-6894a57f9324"}, want: "8e03978e-40d5-43e8-bc93-6894a57f9324"},
		{name: "bare 255", values: []string{strings.Repeat("k", 255)}, want: strings.Repeat("k", 255)},
		{name: "sf-string 255", values: []string{`"` + strings.Repeat("k", 255) + `"`}, want: strings.Repeat("k", 255)},
		{name: "sf-string 255 decoded, longer encoded", values: []string{escaped255}, want: strings.Repeat(`"`, 10) + strings.Repeat("a", 245)},
		{name: "bare 256", values: []string{strings.Repeat("k", 256)}, err: idempotency.ErrKeyMalformed},
		{name: "sf-string 256", values: []string{`"` + strings.Repeat("k", 256) + `"`}, err: idempotency.ErrKeyMalformed},
		{name: "sf-string 256 decoded", values: []string{`"` + strings.Repeat(`\\`, 256) + `"`}, err: idempotency.ErrKeyMalformed},
		{name: "empty", values: []string{""}, err: idempotency.ErrKeyMalformed},
		{name: "only spaces", values: []string{"   "}, err: idempotency.ErrKeyMalformed},
		{name: "empty sf-string", values: []string{`""`}, err: idempotency.ErrKeyMalformed},
		{name: "bare control 0x1f", values: []string{"a\x1fb"}, err: idempotency.ErrKeyMalformed},
		{name: "bare DEL", values: []string{"a\x7fb"}, err: idempotency.ErrKeyMalformed},
		{name: "bare UTF-8", values: []string{"caf\u00e9"}, err: idempotency.ErrKeyMalformed},
		{name: "bare NUL", values: []string{"a\x00b"}, err: idempotency.ErrKeyMalformed},
		{name: "bare inner tab", values: []string{"a\tb"}, err: idempotency.ErrKeyMalformed},
		{name: "sf-string control 0x1f", values: []string{"\"a\x1fb\""}, err: idempotency.ErrKeyMalformed},
		{name: "sf-string DEL", values: []string{"\"a\x7fb\""}, err: idempotency.ErrKeyMalformed},
		{name: "sf-string UTF-8", values: []string{"\"caf\u00e9\""}, err: idempotency.ErrKeyMalformed},
		{name: "unterminated", values: []string{`"abc`}, err: idempotency.ErrKeyMalformed},
		{name: "lone quote", values: []string{`"`}, err: idempotency.ErrKeyMalformed},
		{name: "trailing backslash", values: []string{`"abc\`}, err: idempotency.ErrKeyMalformed},
		{name: "escaped closing quote", values: []string{`"abc\"`}, err: idempotency.ErrKeyMalformed},
		{name: "characters after closing quote", values: []string{`"abc"def`}, err: idempotency.ErrKeyMalformed},
		{name: "second sf-string", values: []string{`"a", "b"`}, err: idempotency.ErrKeyMalformed},
		{name: "parameters", values: []string{`"abc";a=1`}, err: idempotency.ErrKeyMalformed},
		{name: "bad escape", values: []string{`"\n"`}, err: idempotency.ErrKeyMalformed},
		{name: "bad escape x", values: []string{`"a\x41"`}, err: idempotency.ErrKeyMalformed},
		{name: "two values", values: []string{"abc", "abc"}, err: idempotency.ErrKeyMalformed},
		{name: "two values one empty", values: []string{"abc", ""}, err: idempotency.ErrKeyMalformed},
		{name: "none", values: nil, err: idempotency.ErrKeyMissing},
		{name: "empty slice", values: []string{}, err: idempotency.ErrKeyMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := idempotency.ParseKey(tt.values)
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err)
				assert.Empty(t, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseKeyBareAndSFStringNameSameKey(t *testing.T) {
	bare, err := idempotency.ParseKey([]string{"order-42"})
	require.NoError(t, err)
	sf, err := idempotency.ParseKey([]string{`"order-42"`})
	require.NoError(t, err)
	assert.Equal(t, bare, sf)
	assert.Equal(t, idempotency.ScopedKey("p", bare), idempotency.ScopedKey("p", sf))
}

func TestParseKeyFromHeader(t *testing.T) {
	h := http.Header{}
	_, err := idempotency.ParseKey(h.Values(idempotency.HeaderName))
	require.ErrorIs(t, err, idempotency.ErrKeyMissing)

	h.Add(idempotency.HeaderName, "k1")
	got, err := idempotency.ParseKey(h.Values(idempotency.HeaderName))
	require.NoError(t, err)
	assert.Equal(t, "k1", got)

	h.Add(idempotency.HeaderName, "k2")
	_, err = idempotency.ParseKey(h.Values(idempotency.HeaderName))
	require.ErrorIs(t, err, idempotency.ErrKeyMalformed)
}

func TestScopedKeySeparatesPrincipals(t *testing.T) {
	assert.NotEqual(t, idempotency.ScopedKey("a", "k"), idempotency.ScopedKey("b", "k"))
	assert.NotEqual(t, idempotency.ScopedKey("ab", "c"), idempotency.ScopedKey("a", "bc"))
	assert.NotEqual(t, idempotency.ScopedKey("", "k"), idempotency.ScopedKey("k", ""))
}

func TestRequestFingerprint(t *testing.T) {
	configured := []string{"X-Account", "X-Currency"}
	base := func() (string, string, http.Header, []byte) {
		h := http.Header{}
		h.Set("X-Account", "acct_1")
		h.Set("X-Currency", "eur")
		h.Set("X-Request-Id", "r1")
		return http.MethodPost, "/v1/charges?expand=true", h, []byte(`{"amount":100}`)
	}
	m, tg, h, b := base()
	ref := idempotency.RequestFingerprint(m, tg, h, configured, b)

	t.Run("deterministic", func(t *testing.T) {
		m, tg, h, b := base()
		assert.Equal(t, ref, idempotency.RequestFingerprint(m, tg, h, configured, b))
	})

	differs := []struct {
		name   string
		mutate func(m, tg *string, h http.Header, b *[]byte)
	}{
		{"method", func(m, _ *string, _ http.Header, _ *[]byte) { *m = http.MethodPatch }},
		{"target path", func(_, tg *string, _ http.Header, _ *[]byte) { *tg = "/v1/refunds?expand=true" }},
		{"target query", func(_, tg *string, _ http.Header, _ *[]byte) { *tg = "/v1/charges?expand=false" }},
		{"target without query", func(_, tg *string, _ http.Header, _ *[]byte) { *tg = "/v1/charges" }},
		{"body", func(_, _ *string, _ http.Header, b *[]byte) { *b = []byte(`{"amount":101}`) }},
		{"empty body", func(_, _ *string, _ http.Header, b *[]byte) { *b = nil }},
		{"configured header value", func(_, _ *string, h http.Header, _ *[]byte) { h.Set("X-Account", "acct_2") }},
		{"configured header absent", func(_, _ *string, h http.Header, _ *[]byte) { h.Del("X-Currency") }},
		{"configured header empty", func(_, _ *string, h http.Header, _ *[]byte) { h.Set("X-Currency", "") }},
		{"configured header second value", func(_, _ *string, h http.Header, _ *[]byte) { h.Add("X-Currency", "usd") }},
	}
	for _, tt := range differs {
		t.Run("differs/"+tt.name, func(t *testing.T) {
			m, tg, h, b := base()
			tt.mutate(&m, &tg, h, &b)
			assert.NotEqual(t, ref, idempotency.RequestFingerprint(m, tg, h, configured, b))
		})
	}

	equal := []struct {
		name   string
		mutate func(h http.Header)
	}{
		{"unconfigured header value", func(h http.Header) { h.Set("X-Request-Id", "r2") }},
		{"unconfigured header added", func(h http.Header) { h.Set("User-Agent", "curl/8") }},
		{"unconfigured header removed", func(h http.Header) { h.Del("X-Request-Id") }},
	}
	for _, tt := range equal {
		t.Run("equal/"+tt.name, func(t *testing.T) {
			m, tg, h, b := base()
			tt.mutate(h)
			assert.Equal(t, ref, idempotency.RequestFingerprint(m, tg, h, configured, b))
		})
	}

	t.Run("configured header name case", func(t *testing.T) {
		m, tg, h, b := base()
		assert.Equal(t, ref, idempotency.RequestFingerprint(m, tg, h, []string{"x-account", "x-currency"}, b))
	})
}

// TestRequestFingerprintEncoding pins the encoding: records stored by an
// earlier version (on disk, in Redis or PostgreSQL) are compared with
// fingerprints computed now, so the bytes hashed must not change.
func TestRequestFingerprintEncoding(t *testing.T) {
	h := http.Header{"X-Account": {"acct_1", "acct_2"}}
	body := []byte(strings.Repeat("b", 5000))
	var enc []byte
	part := func(s string) {
		enc = binary.BigEndian.AppendUint64(enc, uint64(len(s)))
		enc = append(enc, s...)
	}
	part("POST")
	part("/v1/charges?x=1")
	part("x-account")
	enc = binary.BigEndian.AppendUint64(enc, 2)
	part("acct_1")
	part("acct_2")
	enc = binary.BigEndian.AppendUint64(enc, uint64(len(body)))
	enc = append(enc, body...)
	want := sha256.Sum256(enc)
	for range 3 { // the pooled state carries nothing from one call to the next
		assert.Equal(t, idempotency.Fingerprint(want), idempotency.RequestFingerprint("POST", "/v1/charges?x=1", h, []string{"X-Account"}, body))
	}
	assert.Equal(t, "141af787", hex.EncodeToString(want[:4]))

	// Bodies on either side of the scratch's bound (hashed with the parts
	// in one call, or streamed after them), in turns so that the pooled
	// state meets both.
	for _, n := range []int{0, 1, 4000, 4043, 4044, 4100, 3, 70000, 10} {
		body := []byte(strings.Repeat("c", n))
		var enc []byte
		enc = binary.BigEndian.AppendUint64(enc, 4)
		enc = append(enc, "POST"...)
		enc = binary.BigEndian.AppendUint64(enc, 2)
		enc = append(enc, "/x"...)
		enc = binary.BigEndian.AppendUint64(enc, uint64(n))
		enc = append(enc, body...)
		assert.Equal(t, idempotency.Fingerprint(sha256.Sum256(enc)), idempotency.RequestFingerprint("POST", "/x", nil, nil, body), "%d bytes", n)
	}
}

func TestRequestFingerprintUnambiguous(t *testing.T) {
	fp := idempotency.RequestFingerprint
	none := http.Header{}
	tests := []struct {
		name string
		a, b idempotency.Fingerprint
	}{
		{"method/target split", fp("ab", "c", none, nil, nil), fp("a", "bc", none, nil, nil)},
		{"target/body split", fp("POST", "/ab", none, nil, []byte("c")), fp("POST", "/a", none, nil, []byte("bc"))},
		{"method/body split", fp("POSTX", "", none, nil, nil), fp("POST", "", none, nil, []byte("X"))},
		{
			"header values split",
			fp("POST", "/", http.Header{"X-A": {"ab", "c"}}, []string{"X-A"}, nil),
			fp("POST", "/", http.Header{"X-A": {"a", "bc"}}, []string{"X-A"}, nil),
		},
		{
			"header value joined",
			fp("POST", "/", http.Header{"X-A": {"a,b"}}, []string{"X-A"}, nil),
			fp("POST", "/", http.Header{"X-A": {"a", "b"}}, []string{"X-A"}, nil),
		},
		{
			"header value/body split",
			fp("POST", "/", http.Header{"X-A": {"ab"}}, []string{"X-A"}, []byte("c")),
			fp("POST", "/", http.Header{"X-A": {"a"}}, []string{"X-A"}, []byte("bc")),
		},
		{
			"value moves between headers",
			fp("POST", "/", http.Header{"X-A": {"v"}}, []string{"X-A", "X-B"}, nil),
			fp("POST", "/", http.Header{"X-B": {"v"}}, []string{"X-A", "X-B"}, nil),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.NotEqual(t, tt.a, tt.b)
		})
	}
}

func FuzzParseKey(f *testing.F) {
	for _, s := range []string{
		"abc", `"abc"`, `"a\"b\\c"`, " abc ", "", `""`, `"abc`, `"abc"x`, `"\n"`,
		"a\x1fb", "a\x7f", "caf\u00e9", `\`, `"\\"`, `a"b`, strings.Repeat("k", 255), strings.Repeat("k", 256),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		key, err := idempotency.ParseKey([]string{v})
		if err != nil {
			if !assert.ErrorIs(t, err, idempotency.ErrKeyMalformed) {
				return
			}
			assert.Empty(t, key)
			return
		}
		require.GreaterOrEqual(t, len(key), 1)
		require.LessOrEqual(t, len(key), idempotency.MaxKeyLen)
		for i := 0; i < len(key); i++ {
			require.Truef(t, key[i] >= 0x20 && key[i] <= 0x7e, "byte %#x at %d of %q", key[i], i, key)
		}
		if trimmed := strings.Trim(v, " \t"); trimmed[0] != '"' {
			require.Equal(t, trimmed, key, "a bare key is the trimmed value")
		}
		// Every accepted key, re-encoded as an sf-string, names the same key.
		again, err := idempotency.ParseKey([]string{sfString(key)})
		require.NoError(t, err, "sf-string encoding of %q", key)
		require.Equal(t, key, again)
		// Accepted keys without surrounding blanks or a leading quote are
		// valid bare keys too.
		if key[0] != '"' && strings.Trim(key, " \t") == key {
			bare, err := idempotency.ParseKey([]string{key})
			require.NoError(t, err)
			require.Equal(t, key, bare)
		}
	})
}

func FuzzRequestFingerprint(f *testing.F) {
	f.Add("POST", "/v1/charges", "v", []byte("body"), "POST", "/v1/charges", "v", []byte("body"))
	f.Add("ab", "c", "", []byte(nil), "a", "bc", "", []byte(nil))
	f.Add("POST", "/a", "x", []byte("b"), "POST", "/ax", "", []byte("b"))
	f.Fuzz(func(t *testing.T, m1, t1, v1 string, b1 []byte, m2, t2, v2 string, b2 []byte) {
		h1 := http.Header{"X-A": {v1}}
		h2 := http.Header{"X-A": {v2}}
		names := []string{"X-A"}
		fp1 := idempotency.RequestFingerprint(m1, t1, h1, names, b1)
		fp2 := idempotency.RequestFingerprint(m2, t2, h2, names, b2)
		same := m1 == m2 && t1 == t2 && v1 == v2 && string(b1) == string(b2)
		if same {
			require.Equal(t, fp1, fp2)
		} else {
			require.NotEqual(t, fp1, fp2, "distinct requests share a fingerprint")
		}
		// Unconfigured headers never take part.
		h1.Set("X-Other", m2+t2)
		require.Equal(t, fp1, idempotency.RequestFingerprint(m1, t1, h1, names, b1))
	})
}

// sfString encodes s as an RFC 8941 sf-string.
func sfString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}
