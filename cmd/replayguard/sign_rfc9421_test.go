package main

import (
	"context"
	"crypto/ed25519"
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
	"github.com/replayguard/replayguard/signature"
)

func rfcSignHeaders(t *testing.T, out string) http.Header {
	t.Helper()
	h := http.Header{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		require.True(t, ok, line)
		h.Add(k, v)
	}
	return h
}

func rfcSignVerify(t *testing.T, cfg replayguard.Config, out, method, target string, body []byte) signature.Verified {
	t.Helper()
	g, err := replayguard.New(cfg)
	require.NoError(t, err)
	v, err := g.Verify(context.Background(), &signature.Request{Method: method, Scheme: "https", Host: "api.example.com",
		Target: target, Header: rfcSignHeaders(t, out), Body: body})
	require.NoError(t, err, out)
	return v
}

func TestSignRFC9421WithSecret(t *testing.T) {
	out, err := runSign(t, "--scheme", "rfc9421", "--key-id", "client-a", "--secret", "base64:c2VjcmV0LWJ5dGVzLTAxMjM0NTY3ODk=",
		"-d", `{"amount":100}`, "-H", "Idempotency-Key: op-1", "https://api.example.com/v1/charges?x=1")
	require.NoError(t, err)
	assert.Contains(t, out, `Signature-Input: sig1=("@method" "@target-uri" "content-digest" "idempotency-key");created=`)
	assert.Contains(t, out, "Content-Digest: sha-256=:")
	cfg := replayguard.Config{Scheme: "rfc9421", Keys: []replayguard.KeyConfig{{ID: "client-a", Secrets: []string{"base64:c2VjcmV0LWJ5dGVzLTAxMjM0NTY3ODk="}}}}
	v := rfcSignVerify(t, cfg, out, http.MethodPost, "/v1/charges?x=1", []byte(`{"amount":100}`))
	assert.Equal(t, "client-a", v.KeyID)
}

func TestSignRFC9421FromConfigWithPrivateKey(t *testing.T) {
	dir := t.TempDir()
	pub, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	require.NoError(t, err)
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	privPath, pubPath, cfgPath := filepath.Join(dir, "priv.pem"), filepath.Join(dir, "pub.pem"), filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600))
	require.NoError(t, os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600))
	require.NoError(t, os.WriteFile(cfgPath, []byte("scheme: rfc9421\nkeys:\n  - id: partner-b\n    algorithm: EdDSA\n    public_key_file: "+pubPath+"\n"), 0o600))

	out, err := runSign(t, "--config", cfgPath, "--key-id", "partner-b", "--private-key", privPath,
		"--components", "@method,@path,@authority", "--label", "partner", "--tag", "app", "https://api.example.com/v1/orders")
	require.NoError(t, err)
	assert.Contains(t, out, `Signature-Input: partner=("@method" "@path" "@authority");created=`)
	assert.Contains(t, out, `;tag="app"`)
	cfg := replayguard.Config{Scheme: "rfc9421", RFC9421: replayguard.RFC9421Config{RequiredComponents: []string{"@method"}},
		Keys: []replayguard.KeyConfig{{ID: "partner-b", Algorithm: "EdDSA", PublicKeyFile: pubPath}}}
	rfcSignVerify(t, cfg, out, http.MethodGet, "/v1/orders", nil)

	_, err = runSign(t, "--config", cfgPath, "--key-id", "partner-b", "https://api.example.com/")
	require.ErrorContains(t, err, "--private-key")

	out, err = runSign(t, "--config", cfgPath, "--key-id", "partner-b", "--private-key", privPath, "--curl", "-X", "DELETE", "https://api.example.com/v1/orders/7")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(out, "curl -sS -i -X DELETE -H 'Signature: partner") || strings.HasPrefix(out, "curl -sS -i -X DELETE -H 'Signature: sig1="), out)
}

func TestSignRFC9421Dispatch(t *testing.T) {
	out, err := runSign(t, "--key-id", "k", "--secret", "s", "--tag", "app", "https://api.example.com/")
	require.NoError(t, err, "a flag of rfc9421 alone selects it")
	assert.Contains(t, out, `;tag="app"`)
	out, err = runSign(t, "--key-id", "k", "--secret", "s", "https://api.example.com/")
	require.NoError(t, err)
	assert.Contains(t, out, "X-Signature: v1=", "hmac is the default")
	_, err = runSign(t, "--scheme", "rfc9421", "https://api.example.com/")
	require.ErrorIs(t, err, errUsage)
	_, err = runSign(t, "--scheme", "rfc9421", "--key-id", "k", "--secret", "s", "ftp://x/")
	require.ErrorIs(t, err, errUsage)
	_, err = runSign(t, "--scheme", "rfc9421", "--key-id", "k", "--secret", "s", "-H", "bad", "https://api.example.com/")
	require.ErrorIs(t, err, errUsage)
	_, err = runSign(t, "--scheme", "rfc9421", "--key-id", "k", "--private-key", "/nonexistent.pem", "https://api.example.com/")
	require.Error(t, err)
}
