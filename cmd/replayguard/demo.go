package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/config"
	"github.com/replayguard/replayguard/disk"
	"github.com/replayguard/replayguard/signature/hmacsig"
)

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCLI("demo", "demo [--listen ADDR]", `Runs a gateway and an echo upstream on loopback with a fresh random key and
prints a signed curl command: its first run gets 200, its second
401 nonce_replayed. Ctrl-C stops it.`, stderr)
	listen := c.fs.String("listen", "127.0.0.1:8080", "gateway `address` (loopback)")
	if err := c.parse(args, stdout); err != nil {
		return err
	}
	if err := c.positional(0, 0, ""); err != nil {
		return err
	}
	echoLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	echo := &http.Server{Handler: http.HandlerFunc(echoHandler), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = echo.Serve(echoLn) }()
	defer func() { _ = echo.Close() }()

	gwLn, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("demo: %w (pick another with --listen)", err)
	}
	// A secret as keygen prints it: pasted as it is, it signs everywhere.
	secret, err := newSecret(32)
	if err != nil {
		return err
	}
	// The binary's default stores, in a directory of the demo's own,
	// removed when it ends.
	data, err := os.MkdirTemp("", "replayguard-demo-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(data) }()
	cfg := config.File{
		Config:   replayguard.Config{Keys: []replayguard.KeyConfig{{ID: "demo", Secrets: []string{secret}}}},
		Upstream: "http://" + echoLn.Addr().String(),
		Listen:   gwLn.Addr().String(),
		Disk:     disk.Config{Path: data},
		// Lines for people: each request the demo gateway answers, and
		// why it refused one.
		Log: config.Log{Format: "text"},
	}.WithDefaults()

	body := `{"amount":1000,"currency":"eur"}`
	url := "http://" + gwLn.Addr().String() + "/v1/charges"
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", uuid.NewString())
	if err := (&hmacsig.Signer{KeyID: "demo", Secret: []byte(secret)}).Sign(req, []byte(body)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, `replayguard demo
  gateway  http://%s  (scheme hmac, disk stores in %s)
  upstream http://%s  (echo)
  key id   demo
  secret   %s

A signed request (valid for %s). Run it once: 200 from the echo upstream.
Run it again: 401 nonce_replayed. Change a byte of the body: 401 signature_invalid.
Re-sign the same operation (same Idempotency-Key and body, fresh nonce) with
'replayguard sign ... --idempotency-key <key>' and the stored response comes
back with Idempotent-Replayed: true, without reaching the upstream again.

%s

Sign and send your own (a POST gets a fresh Idempotency-Key):
  replayguard sign --secret '%s' --key-id demo -d '{"a":1}' --send %s
Ctrl-C stops the demo.
`, gwLn.Addr(), data, echoLn.Addr(), secret, cfg.Timestamp.Tolerance, curlLine(req, body), secret, url)

	return serve(ctx, cfg, newLogger(stderr, cfg.Log), &listeners{main: gwLn}, "")
}

// echoHandler answers with what it received.
func echoHandler(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"method": r.Method, "path": r.URL.RequestURI(), "key_id": r.Header.Get(replayguard.HeaderKeyID),
		"body": string(b), "received_at": time.Now().UTC().Format(time.RFC3339),
	})
}
