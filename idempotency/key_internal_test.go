package idempotency

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// allocSize's table answers as its search does.
func TestAllocSizeTable(t *testing.T) {
	for n := 0; n <= 40<<10; n++ {
		if got, want := allocSize(n), searchAllocSize(n); got != want {
			t.Fatalf("allocSize(%d) = %d, want %d", n, got, want)
		}
	}
}

// encodeResponse decodes back, whatever the varints' widths.
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
	}
}
