package main_test

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rg runs the replayguard binary with args, env added to the
// environment, and returns its stdout, stderr and exit status.
func rg(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return stdout.String(), stderr.String(), code
}

// printedRequest builds the request whose headers `replayguard sign`
// printed.
func printedRequest(t *testing.T, method, url, out, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		require.True(t, ok, line)
		req.Header.Add(k, v)
	}
	return req
}

const signSecret = "sign-e2e-secret-0123456789"

// Under the default configuration a POST signed by `sign` carries a fresh
// Idempotency-Key, signed, and is accepted; --no-idempotency-key gets
// idempotency_key_missing; --idempotency-key retries an operation.
func TestSignIdempotencyKeyByDefault(t *testing.T) {
	up := newOpUpstream(t)
	g := startGateway(t, fmt.Sprintf("listen: 127.0.0.1:0\nupstream: %s\nkeys: [{id: client-a, secrets: [%s]}]\n", up.URL, signSecret))
	url := "http://" + g.addr + "/v1/charges"
	env := []string{"REPLAYGUARD_SECRET=" + signSecret}

	out, errOut, code := rg(t, env, "sign", "--key-id", "client-a", "-d", `{"amount":1}`, url)
	require.Equal(t, 0, code, errOut)
	req := printedRequest(t, http.MethodPost, url, out, `{"amount":1}`)
	_, err := uuid.Parse(req.Header.Get("Idempotency-Key"))
	require.NoError(t, err, "a fresh UUID:\n%s", out)
	forged := clone(t, req, `{"amount":1}`)
	forged.Header.Set("Idempotency-Key", uuid.NewString())
	r := send(t, forged)
	assert.Equal(t, "signature_invalid", r.code, "the key is signed: %s", r.body)
	r = send(t, req)
	assert.Equal(t, http.StatusCreated, r.status, r.body)

	// GET is not covered: no key.
	out, errOut, code = rg(t, env, "sign", "--key-id", "client-a", url)
	require.Equal(t, 0, code, errOut)
	assert.NotContains(t, out, "Idempotency-Key")

	out, _, code = rg(t, env, "sign", "--key-id", "client-a", "-d", `{"amount":2}`, "--no-idempotency-key", "--send", url)
	assert.Equal(t, 1, code)
	assert.True(t, strings.HasPrefix(out, "HTTP/1.1 400 Bad Request\n"), out)
	assert.Contains(t, out, `"code":"idempotency_key_missing"`)

	key := "op-" + uuid.NewString()
	var bodies []string
	for i := 0; i < 2; i++ {
		out, errOut, code = rg(t, env, "sign", "--key-id", "client-a", "-d", `{"amount":3}`, "--idempotency-key", key, "--send", url)
		require.Equal(t, 0, code, errOut)
		_, body, ok := strings.Cut(out, "\n\n")
		require.True(t, ok, out)
		bodies = append(bodies, body)
	}
	assert.Contains(t, out, "Idempotent-Replayed: true\n", "the second send of the operation is answered from its record")
	assert.Equal(t, bodies[0], bodies[1])
	assert.Equal(t, int64(2), up.executions.Load(), "the first POST and the operation, once")

	for _, args := range [][]string{
		{"--idempotency-key", "k", "--no-idempotency-key"},
		{"-H", "Idempotency-Key: k", "--idempotency-key", "k2"},
		{"-H", "Idempotency-Key: k", "--no-idempotency-key"},
	} {
		_, errOut, code := rg(t, env, append(append([]string{"sign", "--key-id", "client-a", "-d", "x"}, args...), url)...)
		assert.Equal(t, 2, code, args)
		assert.Contains(t, errOut, "choose one", args)
	}
}

// --send prints the status line, the response's headers and its body.
func TestSignSendPrintsResponse(t *testing.T) {
	up := newUpstream(t)
	g := startGateway(t, fmt.Sprintf("listen: 127.0.0.1:0\nupstream: %s\nkeys: [{id: client-a, secrets: [%s]}]\n", up.URL, signSecret))
	out, errOut, code := rg(t, nil, "sign", "--secret", signSecret, "--key-id", "client-a", "-X", "PUT", "-d", "hello",
		"--send", "http://"+g.addr+"/v1/x?q=1")
	require.Equal(t, 0, code, errOut)
	head, body, ok := strings.Cut(out, "\n\n")
	require.True(t, ok, out)
	lines := strings.Split(head, "\n")
	assert.Equal(t, "HTTP/1.1 200 OK", lines[0])
	assert.Contains(t, lines, "X-Upstream-Key-Id: client-a")
	assert.Equal(t, `upstream saw PUT /v1/x?q=1 "hello"`+"\n", body)
	assert.Equal(t, int64(1), up.hits.Load())

	_, errOut, code = rg(t, nil, "sign", "--secret", signSecret, "--key-id", "client-a", "--send", "http://127.0.0.1:1/")
	assert.Equal(t, 1, code, "no response")
	assert.Contains(t, errOut, "replayguard: sign:")
}

// A configuration's hmac header names are the ones sign sends; its key
// wins over $REPLAYGUARD_SECRET.
func TestSignFromConfigHeaderNames(t *testing.T) {
	up := newUpstream(t)
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
upstream: %s
keys: [{id: client-a, secrets: [%s]}]
hmac: {key_id_header: X-Client, timestamp_header: X-Client-Time, nonce_header: X-Client-Nonce, signature_header: X-Client-Signature}
`, up.URL, signSecret)
	g := startGateway(t, cfg)
	path := filepath.Join(t.TempDir(), "client.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	out, errOut, code := rg(t, []string{"REPLAYGUARD_SECRET=another-secret-0123456789"},
		"sign", "--config", path, "--key-id", "client-a", "-d", "x", "--send", "http://"+g.addr+"/v1/x")
	require.Equal(t, 0, code, out+errOut)
	assert.Equal(t, int64(1), up.hits.Load())
}

// Each preset's delivery, signed by `sign` from --secret and from the
// gateway's own configuration, is accepted by a gateway configured with
// that preset; the same signed delivery sent again never reaches the
// upstream twice: refused as a replay where the provider signs a
// timestamp, answered from the stored response where it does not.
func TestSignPresetsVerifiedByGateway(t *testing.T) {
	for _, tc := range []struct {
		preset, secret string
		headers        map[string]string // header → pattern of its value
		replayCode     string            // "": answered from the record
	}{
		{"stripe", "whsec_stripe0123456789abcdef", map[string]string{"Stripe-Signature": `^t=\d+,v1=[0-9a-f]{64}$`}, "nonce_replayed"},
		{"github", "github-secret-0123456789", map[string]string{"X-Hub-Signature-256": `^sha256=[0-9a-f]{64}$`, "X-Github-Delivery": uuidPattern}, ""},
		{"slack", "slack-secret-0123456789", map[string]string{"X-Slack-Signature": `^v0=[0-9a-f]{64}$`, "X-Slack-Request-Timestamp": `^\d+$`}, "nonce_replayed"},
		{"shopify", "shopify-secret-0123456789", map[string]string{"X-Shopify-Hmac-Sha256": `^[A-Za-z0-9+/]{43}=$`, "X-Shopify-Webhook-Id": uuidPattern}, ""},
		{"standard-webhooks", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", map[string]string{
			"Webhook-Signature": `^v1,[A-Za-z0-9+/]{43}=$`, "Webhook-Id": `^msg_`, "Webhook-Timestamp": `^\d+$`}, "nonce_replayed"},
	} {
		t.Run(tc.preset, func(t *testing.T) {
			up := newUpstream(t)
			cfg := fmt.Sprintf("listen: 127.0.0.1:0\nupstream: %s\nscheme: %s\nkeys: [{id: endpoint, secrets: [%q]}]\n", up.URL, tc.preset, tc.secret)
			g := startGateway(t, cfg)
			cfgPath := filepath.Join(t.TempDir(), "receiver.yaml")
			require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o600))
			url := "http://" + g.addr + "/webhooks"

			body := `{"id":"evt_1","type":"invoice.paid"}`
			out, errOut, code := rg(t, nil, "sign", "--preset", tc.preset, "--secret", tc.secret, "-d", body, url)
			require.Equal(t, 0, code, errOut)
			first := printedRequest(t, http.MethodPost, url, out, body)
			for h, pattern := range tc.headers {
				assert.Regexp(t, regexp.MustCompile(pattern), first.Header.Get(h), h)
			}
			assert.Equal(t, "application/json", first.Header.Get("Content-Type"))
			assert.Empty(t, first.Header.Get("Idempotency-Key"), "deliveries are deduplicated by their own id")
			r := send(t, first)
			require.Equal(t, http.StatusOK, r.status, r.body)

			r = send(t, clone(t, first, body))
			if tc.replayCode != "" {
				assert.Equal(t, http.StatusUnauthorized, r.status)
				assert.Equal(t, tc.replayCode, r.code, r.body)
			} else {
				assert.Equal(t, http.StatusOK, r.status, r.body)
				assert.Equal(t, "true", r.header.Get("Idempotent-Replayed"))
			}
			assert.Equal(t, int64(1), up.hits.Load())

			// The configuration names the preset and its one key.
			out, errOut, code = rg(t, nil, "sign", "--config", cfgPath, "-d", `{"id":"evt_2"}`, "--send", url)
			require.Equal(t, 0, code, out+errOut)
			assert.True(t, strings.HasPrefix(out, "HTTP/1.1 200 OK\n"), out)
			assert.Equal(t, int64(2), up.hits.Load())
		})
	}
}

const uuidPattern = `^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`

// --delivery-id names the delivery, and a provider's retry of it (signed
// anew) gets the stored response; an Ed25519 --private-key signs
// standard-webhooks v1a deliveries.
func TestSignPresetDeliveryIDAndV1a(t *testing.T) {
	up := newUpstream(t)
	g := startGateway(t, fmt.Sprintf("listen: 127.0.0.1:0\nupstream: %s\nscheme: github\nkeys: [{id: gh, secrets: [github-secret-0123456789]}]\n", up.URL))
	for i := 0; i < 2; i++ {
		out, errOut, code := rg(t, nil, "sign", "--preset", "github", "--secret", "github-secret-0123456789", "--delivery-id", "72d3162e-cc78-11e3-81ab-4c9367dc0958",
			"-H", "X-GitHub-Event: ping", "-d", `{"zen":"Keep it logically awesome."}`, "--send", "http://"+g.addr+"/hooks")
		require.Equal(t, 0, code, out+errOut)
	}
	assert.Equal(t, int64(1), up.hits.Load())

	dir := t.TempDir()
	pub, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	require.NoError(t, err)
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	privPath, pubPath := filepath.Join(dir, "priv.pem"), filepath.Join(dir, "pub.pem")
	require.NoError(t, os.WriteFile(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600))
	require.NoError(t, os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600))
	up = newUpstream(t)
	g = startGateway(t, fmt.Sprintf("listen: 127.0.0.1:0\nupstream: %s\nscheme: standard-webhooks\nkeys: [{id: sender, public_key_file: %s}]\n", up.URL, pubPath))
	out, errOut, code := rg(t, nil, "sign", "--preset", "standard-webhooks", "--private-key", privPath, "-d", `{"type":"ping"}`, "--send", "http://"+g.addr+"/hooks")
	require.Equal(t, 0, code, out+errOut)
	assert.Equal(t, int64(1), up.hits.Load())

	for _, args := range [][]string{
		{"--preset", "stripe", "--secret", "s", "--delivery-id", "x"},
		{"--preset", "github", "--secret", "s", "--idempotency-key", "x"},
		{"--preset", "slack", "--secret", "s", "--key-id", "a"},
		{"--preset", "paypal", "--secret", "s"},
		{"--preset", "github", "--scheme", "hmac", "--secret", "s"},
	} {
		_, errOut, code := rg(t, nil, append(append([]string{"sign"}, args...), "http://127.0.0.1:1/")...)
		assert.Equal(t, 2, code, args)
		assert.Contains(t, errOut, "Run 'replayguard sign --help'", args)
	}
}
