package signature_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/replayguard/replayguard/signature"
)

func TestOriginForm(t *testing.T) {
	tests := map[string]string{
		"/v1/x?a=1":                    "/v1/x?a=1",
		"/":                            "/",
		"*":                            "*",
		"":                             "",
		"http://api.example.com/v1?x":  "/v1?x",
		"https://api.example.com":      "/",
		"http://api.example.com?q=1":   "/?q=1",
		"http://user@h:8080/a/b?c=d#f": "/a/b?c=d#f",
	}
	for in, want := range tests {
		assert.Equal(t, want, signature.OriginForm(in), in)
	}
}
