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

// runSign runs `replayguard sign` with args and returns what it printed
// on stdout.
func runSign(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := cmdSign(context.Background(), args, &stdout, &stderr)
	return stdout.String(), err
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

// A flag of the jwt scheme selects it without --scheme; another scheme's
// flag is refused, never ignored.
func TestSignJWTSchemeSelection(t *testing.T) {
	out, err := runSign(t, "--key-id", "hs", "--secret", signJWTSecret, "--sub", "alice", "https://api.example.com/")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(out, "Authorization: Bearer "), out)

	for _, args := range [][]string{
		{"--scheme", "hmac", "--key-id", "a", "--secret", signJWTSecret, "--sub", "alice", "https://api.example.com/"},
		{"--scheme", "jwt", "--key-id", "a", "--secret", signJWTSecret, "--components", "@method", "https://api.example.com/"},
		{"--key-id", "a", "--secret", signJWTSecret, "--sub", "alice", "--tag", "x", "https://api.example.com/"},
		{"--no-such-flag", "https://api.example.com/"},
	} {
		_, err := runSign(t, args...)
		assert.ErrorIs(t, err, errUsage, args)
	}
}

func TestSignJWTWithSecret(t *testing.T) {
	s, err := jwtsig.New([]signature.Key{{ID: "hs", Secrets: [][]byte{[]byte(signJWTSecret)}}})
	require.NoError(t, err)
	out, err := runSign(t, "--scheme", "jwt", "--key-id", "hs", "--secret", signJWTSecret,
		"--sub", "alice", "-d", `{"a":1}`, "https://api.example.com/v1/x?y=1")
	require.NoError(t, err)
	assert.Contains(t, out, "Authorization: Bearer ")
	v := verifyPrinted(t, s, out, http.MethodPost, "/v1/x?y=1", []byte(`{"a":1}`))
	assert.Equal(t, "alice", v.Subject)

	out, err = runSign(t, "--scheme", "jwt", "--key-id", "hs", "--secret", signJWTSecret, "--curl", "https://api.example.com/")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(out, "curl "), out)
}

func TestSignJWTWithPrivateKey(t *testing.T) {
	path, k := writeECKey(t)
	s, err := jwtsig.New([]signature.Key{{ID: "es", PublicKey: &k.PublicKey}})
	require.NoError(t, err)
	_, err = runSign(t, "--key-id", "es", "--private-key", path, "https://api.example.com/v1/x/1")
	require.ErrorIs(t, err, errUsage, "--private-key alone names no scheme: hmac signs, and has no private key")
	out, err := runSign(t, "--scheme", "jwt", "--key-id", "es", "--private-key", path, "-X", "DELETE", "https://api.example.com/v1/x/1")
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
	out, err := runSign(t, "--config", cfgPath, "--key-id", "hs", "-d", "x", "https://api.example.com/v1/x")
	require.NoError(t, err, "the configuration's scheme selects jwt")
	verifyPrinted(t, s, out, http.MethodPost, "/v1/x", []byte("x"))
}

func TestSignJWTDPoP(t *testing.T) {
	t.Setenv("REPLAYGUARD_SECRET", "")
	dpopPath, _ := writeECKey(t)
	s, err := jwtsig.New([]signature.Key{{ID: "hs", Secrets: [][]byte{[]byte(signJWTSecret)}}}, jwtsig.WithDPoP(true))
	require.NoError(t, err)
	out, err := runSign(t, "--key-id", "hs", "--secret", signJWTSecret, "--dpop-key", dpopPath, "-d", "b", "https://api.example.com/v1/x")
	require.NoError(t, err)
	h := signedHeaders(t, out)
	assert.True(t, strings.HasPrefix(h.Get("Authorization"), "DPoP "), out)
	assert.NotEmpty(t, h.Get("DPoP"))
	verifyPrinted(t, s, out, http.MethodPost, "/v1/x", []byte("b"))

	token := strings.TrimPrefix(h.Get("Authorization"), "DPoP ")
	out, err = runSign(t, "--dpop-key", dpopPath, "--access-token", token, "https://api.example.com/v1/y")
	require.NoError(t, err)
	verifyPrinted(t, s, out, http.MethodGet, "/v1/y", nil)

	_, err = runSign(t, "--access-token", token, "https://api.example.com/v1/y")
	assert.ErrorIs(t, err, errUsage, "--access-token needs --dpop-key")
	_, err = runSign(t, "--scheme", "jwt", "--key-id", "hs", "https://api.example.com/")
	assert.ErrorContains(t, err, "--secret", "no secret and no private key")
}
