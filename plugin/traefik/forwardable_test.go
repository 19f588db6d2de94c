package traefik

import (
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"

	"github.com/replayguard/replayguard/signature"
)

// forwardable's shortcut agrees with parsing the target as Traefik does.
func TestForwardableShortcut(t *testing.T) {
	parsed := func(uri string) bool {
		target := signature.OriginForm(uri)
		if target == "" {
			return true
		}
		u, err := url.ParseRequestURI(target)
		return err == nil && strings.IndexByte(u.RawQuery, ';') < 0 && u.RequestURI() == target
	}
	const chars = "/?=&%;:@$+,.-_~!*'()[]{}|^`\\\"<> #aZ09\x7f\xc3"
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 200_000; n++ {
		b := make([]byte, 1+rng.IntN(12))
		for i := range b {
			b[i] = chars[rng.IntN(len(chars))]
		}
		if n%2 == 0 {
			b[0] = '/'
		}
		uri := string(b)
		if forwardable(uri) != parsed(uri) {
			t.Fatalf("%q: forwardable %v, parsed %v", uri, forwardable(uri), parsed(uri))
		}
	}
}
