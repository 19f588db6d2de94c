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
