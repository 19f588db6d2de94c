package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/config"
	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/jwtsig"
)

const signJWTSecret = "sign-jwt-secret-0123456789abcdef"

// signedHeaders parses the header lines `replayguard sign` prints.
func signedHeaders(t *testing.T, out string) http.Header {
	t.Helper()
	h := http.Header{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		require.True(t, ok, line)
		h.Add(k, v)
	}
	return h
}

func runSignJWT(t *testing.T, args ...string) (bool, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	handled, err := cmdSignJWT(args, &stdout, &stderr)
	return handled, stdout.String(), err
}

func verifyPrinted(t *testing.T, s signature.Scheme, out, method, target string, body []byte) signature.Verified {
	t.Helper()
	r := &signature.Request{Method: method, Scheme: "https", Host: "api.example.com", Target: target, Header: signedHeaders(t, out), Body: body}
	v, err := s.Verify(context.Background(), r)
	require.NoError(t, err, out)
	return v
}

func writeECKey(t *testing.T) (string, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(k)
	require.NoError(t, err)
	p := filepath.Join(t.TempDir(), "key.pem")
	require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
	return p, k
}

func TestSignJWTLeavesHMACAlone(t *testing.T) {
	for _, args := range [][]string{
		{"--key-id", "a", "--secret", "s", "https://api.example.com/"},
		{"--scheme", "hmac", "--key-id", "a", "--secret", "s", "https://api.example.com/"},
		{"--no-such-flag", "https://api.example.com/"},
	} {
		handled, _, err := runSignJWT(t, args...)
		assert.False(t, handled, args)
		assert.NoError(t, err)
	}
}

func TestSignJWTWithSecret(t *testing.T) {
	s, err := jwtsig.New([]signature.Key{{ID: "hs", Secrets: [][]byte{[]byte(signJWTSecret)}}})
	require.NoError(t, err)
	handled, out, err := runSignJWT(t, "--scheme", "jwt", "--key-id", "hs", "--secret", signJWTSecret,
		"--sub", "alice", "-d", `{"a":1}`, "https://api.example.com/v1/x?y=1")
	require.True(t, handled)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(out, "Authorization: Bearer "), out)
	v := verifyPrinted(t, s, out, http.MethodPost, "/v1/x?y=1", []byte(`{"a":1}`))
	assert.Equal(t, "alice", v.Subject)

	_, out, err = runSignJWT(t, "--scheme", "jwt", "--key-id", "hs", "--secret", signJWTSecret, "--curl", "https://api.example.com/")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(out, "curl "), out)
}

func TestSignJWTWithPrivateKey(t *testing.T) {
	path, k := writeECKey(t)
	s, err := jwtsig.New([]signature.Key{{ID: "es", PublicKey: &k.PublicKey}})
	require.NoError(t, err)
	handled, _, _ := runSignJWT(t, "--key-id", "es", "--private-key", path, "https://api.example.com/v1/x/1")
	require.False(t, handled, "--private-key alone is shared with other schemes")
	handled, out, err := runSignJWT(t, "--scheme", "jwt", "--key-id", "es", "--private-key", path, "-X", "DELETE", "https://api.example.com/v1/x/1")
	require.True(t, handled)
	require.NoError(t, err)
	verifyPrinted(t, s, out, http.MethodDelete, "/v1/x/1", nil)
}

func TestSignJWTFromConfig(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "replayguard.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(`
scheme: jwt
keys:
  - id: hs
    secrets: ["`+signJWTSecret+`"]
jwt:
  issuer: https://issuer.example
  audience: https://api.example.com
`), 0o600))
	cfg, err := config.Load(cfgPath)
	require.NoError(t, err)
	s, err := replayguard.NewScheme(cfg.Config)
	require.NoError(t, err)
	handled, out, err := runSignJWT(t, "--config", cfgPath, "--key-id", "hs", "-d", "x", "https://api.example.com/v1/x")
	require.True(t, handled, "the configuration's scheme selects jwt")
	require.NoError(t, err)
	verifyPrinted(t, s, out, http.MethodPost, "/v1/x", []byte("x"))
}

func TestSignJWTDPoP(t *testing.T) {
	t.Setenv("REPLAYGUARD_SECRET", "")
	dpopPath, _ := writeECKey(t)
	s, err := jwtsig.New([]signature.Key{{ID: "hs", Secrets: [][]byte{[]byte(signJWTSecret)}}}, jwtsig.WithDPoP(true))
	require.NoError(t, err)
	handled, out, err := runSignJWT(t, "--key-id", "hs", "--secret", signJWTSecret, "--dpop-key", dpopPath, "-d", "b", "https://api.example.com/v1/x")
	require.True(t, handled)
	require.NoError(t, err)
	h := signedHeaders(t, out)
	assert.True(t, strings.HasPrefix(h.Get("Authorization"), "DPoP "), out)
	assert.NotEmpty(t, h.Get("DPoP"))
	verifyPrinted(t, s, out, http.MethodPost, "/v1/x", []byte("b"))

	token := strings.TrimPrefix(h.Get("Authorization"), "DPoP ")
	_, out, err = runSignJWT(t, "--dpop-key", dpopPath, "--access-token", token, "https://api.example.com/v1/y")
	require.NoError(t, err)
	verifyPrinted(t, s, out, http.MethodGet, "/v1/y", nil)

	handled, _, err = runSignJWT(t, "--access-token", token, "https://api.example.com/v1/y")
	assert.True(t, handled)
	assert.Error(t, err, "--access-token needs --dpop-key")
	_, _, err = runSignJWT(t, "--scheme", "jwt", "--key-id", "hs", "https://api.example.com/")
	assert.Error(t, err, "no secret and no private key")
	handled, _, _ = runSignJWT(t, "--scheme", "rfc9421", "--key-id", "a", "https://api.example.com/")
	assert.False(t, handled, "another scheme is left to its signer")
}
