package layout_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/redisstore/layout"
)

func ExampleKeys() {
	k := layout.Keys{Prefix: "rg"}
	fmt.Println(k.Nonce("client-a", "550e8400-e29b-41d4-a716-446655440000"))
	fmt.Println(k.Idempotency("client-a\x00order-1"))
	fmt.Println(k.Bloom(time.Minute, 28333333, 7, 0, 327600, 31))
	k.Tagging = layout.TagPrincipal
	fmt.Println(k.Nonce("client-a", "550e8400-e29b-41d4-a716-446655440000"))
	// Output:
	// rg:n:{5effe687cb0e8dc397a194f809c3331d}
	// rg:i:{29f86dbac3d02ef421902c2be9148fda}
	// rg:b:{28333333.7}:60000:0:327600:31
	// rg:{e0b107f9f96f69a2b6165a2ac7ae5516}:n:5effe687cb0e8dc397a194f809c3331d
}

func TestKeysHideClientBytes(t *testing.T) {
	k := layout.Keys{}
	for _, nonce := range []string{"}{", "{a}", "x}y{z", strings.Repeat("{", 300)} {
		key := k.Nonce("client-{b}", nonce)
		assert.Equal(t, 1, strings.Count(key, "{"), key)
		assert.Equal(t, 1, strings.Count(key, "}"), key)
		assert.True(t, strings.HasPrefix(key, layout.DefaultPrefix+":n:{"), key)
		assert.Len(t, key, len("rg:n:{}")+layout.DigestLen)
	}
	assert.NotEqual(t, k.Nonce("ab", "c"), k.Nonce("a", "bc"), "scope and nonce are separated")
	k.Tagging = layout.TagPrincipal
	a, b := k.Idempotency("p\x00k1"), k.Idempotency("p\x00k2")
	assert.Equal(t, a[:strings.Index(a, "}")], b[:strings.Index(b, "}")], "one principal, one tag")
	assert.NotEqual(t, a, b)
}

func TestSizeClass(t *testing.T) {
	for n, want := range map[uint]uint{1: 8, 8: 8, 9: 16, 17: 32, 33: 48, 128: 128, 129: 160, 256: 256, 257: 320,
		4097: 5120, 34_000: 40_960, 40_960: 40_960, 40_961: 49_152, 1 << 20: 1 << 20, 1<<20 + 1: 1<<20 + 1<<18} {
		assert.Equal(t, want, layout.SizeClass(n), "%d", n)
	}
}

// The bitmap (filter bytes, 4 counter bytes, SDS header and terminator)
// fills its size class exactly, and never has fewer bits than asked for.
func TestBitmapBitsFillsTheSizeClass(t *testing.T) {
	for _, m := range []uint{1, 100, 240, 2000, 27_860, 278_597, 2_785_967, 43_132_763} {
		got := layout.BitmapBits(m)
		assert.GreaterOrEqual(t, got, m)
		assert.Zero(t, got%8)
		l := layout.BitmapBytes(got)
		hdr := uint(3)
		switch {
		case l < 32:
			hdr = 1
		case l >= 1<<16:
			hdr = 9
		case l >= 1<<8:
			hdr = 5
		}
		alloc := hdr + l + 1
		assert.Equal(t, layout.SizeClass(alloc), alloc, "m %d: %d bytes allocated", m, alloc)
		assert.Equal(t, layout.SizeClass(hdr+(m+7)/8+4+1), alloc, "m %d: the class the optimal size falls in", m)
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []http.Header{
		{},
		{"Content-Type": {"application/json"}, "X-Multi": {"1", "2", ""}, "x-lower": {"kept as given"}},
		{"Bin": {string([]byte{0, 0xff, '\n', 0})}, "Empty": {}},
	} {
		got, err := layout.DecodeHeader(layout.EncodeHeader(h))
		require.NoError(t, err)
		for k, v := range h {
			if len(v) == 0 {
				assert.Empty(t, got[k])
				continue
			}
			assert.Equal(t, v, got[k])
		}
		assert.Len(t, got, len(h))
	}
	_, err := layout.DecodeHeader([]byte{5, 'a'})
	assert.ErrorIs(t, err, layout.ErrCorrupt)
}

func FuzzDecodeHeader(f *testing.F) {
	f.Add(layout.EncodeHeader(http.Header{"A": {"1", "2"}, "B": {""}}))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := layout.DecodeHeader(b)
		if err != nil {
			return
		}
		again, err := layout.DecodeHeader(layout.EncodeHeader(h))
		require.NoError(t, err)
		require.Len(t, again, len(h))
		for k, v := range h {
			require.Equal(t, len(v), len(again[k]))
		}
	})
}
