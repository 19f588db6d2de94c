package signature_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/replayguard/replayguard/signature"
)

func TestIsToken(t *testing.T) {
	for _, s := range []string{"GET", "X-Custom_1", "Bearer", "a!#$%&'*+-.^_`|~z", "9"} {
		assert.True(t, signature.IsToken(s), s)
	}
	for _, s := range []string{"", "two words", "a:b", "(x)", "é", "a\x00", "a,b", "a/b"} {
		assert.False(t, signature.IsToken(s), s)
	}
}
