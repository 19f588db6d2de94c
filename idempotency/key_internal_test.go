package idempotency

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// printableASCII is the bytes 0x20–0x7E, each once: ParseKey's fast path
// accepts exactly what parseKey's byte loop does.
func TestPrintableASCII(t *testing.T) {
	var want []byte
	for c := byte(0x20); c <= 0x7e; c++ {
		want = append(want, c)
	}
	require.Equal(t, string(want), printableASCII)
}

// ParseKey answers as parseKey, its byte-by-byte form, does.
func TestParseKeyFastPath(t *testing.T) {
	for _, v := range []string{"a", " a\t", "abc def", "a\x7f", "a\x1f", "\xff", "é", `"a"`, "", " ", strings.Repeat("k", MaxKeyLen), strings.Repeat("k", MaxKeyLen+1), "a\"b", `a\b`} {
		for _, values := range [][]string{{v}, {v, v}, nil} {
			k1, err1 := ParseKey(values)
			k2, err2 := parseKey(values)
			assert.Equal(t, k2, k1, "%q", values)
			assert.Equal(t, err2, err1, "%q", values)
		}
	}
}

// allocSize's table answers as its search does.
func TestAllocSizeTable(t *testing.T) {
	for n := 0; n <= 40<<10; n++ {
		if got, want := allocSize(n), searchAllocSize(n); got != want {
			t.Fatalf("allocSize(%d) = %d, want %d", n, got, want)
		}
	}
}

// encodeResponse writes exactly the bytes it sized, whatever the varints'
// widths, and decodes back.
func TestEncodeResponseSize(t *testing.T) {
	long := strings.Repeat("v", 300)
	many := make([]string, 200)
	for _, resp := range []*Response{
		nil,
		{Status: 200},
		{Status: 201, Header: map[string][]string{"A": {"1"}, "Empty": {}, "Nil": nil}, Body: []byte("body")},
		{Status: 599, Header: map[string][]string{long: {long, "x"}, "Many": many}, Body: []byte(long)},
	} {
		s := encodeResponse(resp)
		want := resp
		if want == nil {
			want = &Response{}
		}
		got := decodeResponse(s)
		assert.Equal(t, want.Status, got.Status)
		assert.Equal(t, len(want.Header), len(got.Header))
		for k, vs := range want.Header {
			assert.Equal(t, len(vs), len(got.Header[k]), k)
		}
		assert.Equal(t, string(want.Body), string(got.Body))
		assert.Equal(t, len(s), encodedLen(want))
	}
}
