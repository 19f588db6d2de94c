package hmacsig_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/hmacsig"
	"github.com/replayguard/replayguard/timestamp"
)

// client is one of the example clients in examples/clients, each written
// from the hmac wire format (docs/wire-format.md) alone: their output verifying here is the interoperability
// check of the hmac scheme.
type client struct {
	name     string
	bins     []string // executables needed to sign; the first runs the script
	sendBins []string // further executables needed to send
	hint     string
	args     []string // argv before the client's own flags
}

func clients() []client {
	return []client{
		{
			name: "python", bins: []string{"python3"},
			hint: "install Python 3 (apt-get install python3, brew install python)",
			args: []string{"../../examples/clients/python/rg_sign.py"},
		},
		{
			name: "shell", bins: []string{"bash", "openssl"}, sendBins: []string{"curl"},
			hint: "install bash, openssl and curl (apt-get install bash openssl curl)",
			args: []string{"../../examples/clients/shell/rg_sign.sh"},
		},
	}
}

// requireBins finds the executables a client needs (to send, when send is
// set): a missing one fails the test under CI=true and skips it otherwise.
func requireBins(t *testing.T, c client, send bool) string {
	t.Helper()
	bins := c.bins
	if send {
		bins = append(append([]string(nil), c.bins...), c.sendBins...)
	}
	var first string
	for i, b := range bins {
		p, err := exec.LookPath(b)
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not found (%v); %s", b, err, c.hint)
			}
			t.Skipf("%s not found; %s", b, c.hint)
		}
		if i == 0 {
			first = p
		}
	}
	return first
}

func runClient(t *testing.T, c client, send bool, args ...string) string {
	t.Helper()
	bin := requireBins(t, c, send)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(append([]string(nil), c.args...), args...)...)
	cmd.Env = append(os.Environ(), "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, err, "%s %q: %s", c.name, args, stderr.String())
	return stdout.String()
}

func parseHeaderLines(t *testing.T, out string) http.Header {
	t.Helper()
	h := http.Header{}
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		name, value, ok := strings.Cut(line, ": ")
		require.True(t, ok, "not a header line: %q", line)
		h.Add(name, value)
	}
	return h
}

func TestExampleClientsPrintHeaders(t *testing.T) {
	dir := t.TempDir()
	binBody := []byte("line 1\r\nline 2\n\x00\xff\xfe trailing newline\n")
	binFile := filepath.Join(dir, "body.bin")
	require.NoError(t, os.WriteFile(binFile, binBody, 0o600))

	tests := []struct {
		name         string
		secret       string
		method       string
		url          string
		idem         string
		data         *string
		dataFile     string
		body         []byte
		host, target string
	}{
		{name: "post json with key and query", secret: testSecret, method: "POST",
			url: "https://API.Example.com:8443/v1/charges?b=2&a=1", idem: "order-42",
			data: ptr(`{"amount":1000,"currency":"eur"}`), body: []byte(`{"amount":1000,"currency":"eur"}`),
			host: "API.Example.com:8443", target: "/v1/charges?b=2&a=1"},
		{name: "lower-case method", secret: testSecret, method: "patch", url: "http://example.com/x",
			data: ptr("a=1"), body: []byte("a=1"), host: "example.com", target: "/x"},
		{name: "get without path or body", secret: testSecret, method: "GET", url: "http://Example.com",
			host: "example.com", target: "/"},
		{name: "empty path with query", secret: testSecret, method: "GET", url: "http://example.com?q=1",
			host: "example.com", target: "/?q=1"},
		{name: "escapes kept, fragment dropped", secret: testSecret, method: "DELETE",
			url: "http://example.com:8080/a%2Fb/c%20d?x=%41&y#frag", host: "example.com:8080", target: "/a%2Fb/c%20d?x=%41&y"},
		{name: "body with trailing newline", secret: testSecret, method: "POST", url: "http://example.com/x",
			idem: `"quoted key"`, data: ptr("hello\n\n"), body: []byte("hello\n\n"), host: "example.com", target: "/x"},
		{name: "utf-8 body", secret: testSecret, method: "POST", url: "http://example.com/x",
			data: ptr("grüße €"), body: []byte("grüße €"), host: "example.com", target: "/x"},
		{name: "binary body from file", secret: testSecret, method: "PUT", url: "http://example.com/blob",
			dataFile: binFile, body: binBody, host: "example.com", target: "/blob"},
		{name: "base64 secret", secret: "base64:AAEC/f7/AAECAwQFBgcICQ==", method: "POST", url: "http://example.com/x",
			data: ptr("{}"), body: []byte("{}"), host: "example.com", target: "/x"},
		{name: "utf-8 secret", secret: "sécret-ü", method: "GET", url: "http://example.com/x",
			host: "example.com", target: "/x"},
	}
	for _, c := range clients() {
		t.Run(c.name, func(t *testing.T) {
			requireBins(t, c, false)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					t.Parallel()
					args := []string{"--print-headers", "--key-id", testKeyID, "--secret", tt.secret, "-X", tt.method}
					if tt.idem != "" {
						args = append(args, "--idempotency-key", tt.idem)
					}
					if tt.data != nil {
						args = append(args, "-d", *tt.data)
					}
					if tt.dataFile != "" {
						args = append(args, "--data-file", tt.dataFile)
					}
					args = append(args, tt.url)
					before := time.Now()
					h := parseHeaderLines(t, runClient(t, c, false, args...))

					assert.Equal(t, testKeyID, h.Get("X-Key-Id"))
					assert.Equal(t, tt.idem, h.Get("Idempotency-Key"))
					u, err := uuid.Parse(h.Get("X-Nonce"))
					require.NoError(t, err, "nonce %q", h.Get("X-Nonce"))
					assert.Equal(t, uuid.Version(4), u.Version())

					secret, err := signature.ParseSecret(tt.secret)
					require.NoError(t, err)
					s, err := hmacsig.New([]signature.Key{{ID: testKeyID, Secrets: [][]byte{secret}}})
					require.NoError(t, err)
					// The clients send the method upper-cased and sign it as sent.
					v, err := s.Verify(context.Background(), &signature.Request{
						Method: strings.ToUpper(tt.method), Host: tt.host, Target: tt.target, Header: h, Body: tt.body,
					})
					require.NoError(t, err)
					assert.Equal(t, testKeyID, v.KeyID)
					assert.Equal(t, h.Get("X-Nonce"), v.ReplayKey)
					assert.NoError(t, timestamp.New(time.Minute, time.Minute).Check(v.Timestamp, before))
				})
			}
		})
	}
}

func TestExampleClientsSend(t *testing.T) {
	verifier := newTestHMAC(t)
	type seen struct {
		method, target string
		body           []byte
		idem           string
		err            error
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		v, err := verifier.Verify(r.Context(), signature.FromHTTP(r, body))
		got <- seen{method: r.Method, target: r.RequestURI, body: body, idem: r.Header.Get("Idempotency-Key"), err: err}
		if err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, "rejected")
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = fmt.Fprintf(w, "created for %s", v.KeyID)
	}))
	defer srv.Close()

	for _, c := range clients() {
		t.Run(c.name, func(t *testing.T) {
			requireBins(t, c, true)
			t.Run("accepted", func(t *testing.T) {
				out := runClient(t, c, true, "--key-id", testKeyID, "--secret", testSecret, "--idempotency-key", "order-7",
					"-X", "POST", "-d", `{"amount":5}`, srv.URL+"/v1/orders?b=2&a=1")
				s := <-got
				require.NoError(t, s.err)
				assert.Equal(t, "POST", s.method)
				assert.Equal(t, "/v1/orders?b=2&a=1", s.target)
				assert.Equal(t, `{"amount":5}`, string(s.body))
				assert.Equal(t, "order-7", s.idem)
				assert.Equal(t, "201\ncreated for "+testKeyID, out)
			})
			t.Run("get without body", func(t *testing.T) {
				out := runClient(t, c, true, "--key-id", testKeyID, "--secret", testSecret, "-X", "GET", srv.URL)
				s := <-got
				require.NoError(t, s.err)
				assert.Equal(t, "/", s.target)
				assert.Empty(t, s.body)
				assert.Equal(t, "201\ncreated for "+testKeyID, out)
			})
			t.Run("rejected", func(t *testing.T) {
				out := runClient(t, c, true, "--key-id", testKeyID, "--secret", "not-the-secret",
					"-X", "POST", "-d", "x", srv.URL+"/v1/orders")
				s := <-got
				require.ErrorIs(t, s.err, signature.ErrInvalid)
				assert.Equal(t, "401\nrejected", out)
			})
		})
	}
}

func ptr[T any](v T) *T { return &v }
