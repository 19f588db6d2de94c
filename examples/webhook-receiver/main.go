// Command webhook-receiver protects a webhook handler with a replayguard
// preset: deliveries are verified (signature, and timestamp where the
// provider signs one), replays are rejected, and a provider's retries of a
// delivery reach the handler once and get its stored response back.
//
//	WEBHOOK_SECRET=whsec_… webhook-receiver -preset standard-webhooks -listen 127.0.0.1:8081
//
// Presets: standard-webhooks (also Svix), stripe, github, slack, shopify.
// Deliveries are accepted on POST /webhooks. Fire signed deliveries at it
// with `replayguard sign --preset … --send` (README.md).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/replayguard/replayguard"
)

func main() {
	preset := flag.String("preset", envOr("WEBHOOK_PRESET", "standard-webhooks"), "provider preset: standard-webhooks, stripe, github, slack, shopify")
	listen := flag.String("listen", envOr("LISTEN", "127.0.0.1:8081"), "address to serve on")
	flag.Parse()
	if err := run(*preset, *listen, os.Getenv("WEBHOOK_SECRET"), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "webhook-receiver:", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run(preset, listen, secrets string, out io.Writer) error {
	h, _, err := newReceiver(preset, secrets, out)
	if err != nil {
		return err
	}
	srv := &http.Server{Addr: listen, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	slog.Info("receiving webhooks", "preset", preset, "listen", listen, "path", "/webhooks")
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newReceiver returns the server's handler: the application's receiver
// behind the preset's Guard. secrets holds the endpoint's signing secrets,
// comma-separated (several during a rotation).
func newReceiver(preset, secrets string, out io.Writer) (http.Handler, *receiver, error) {
	if secrets == "" {
		return nil, nil, errors.New("set WEBHOOK_SECRET to the endpoint's signing secret")
	}
	g, err := replayguard.New(replayguard.Config{
		Scheme: preset,
		Keys:   []replayguard.KeyConfig{{ID: preset, Secrets: strings.Split(secrets, ",")}},
	})
	if err != nil {
		return nil, nil, err
	}
	rc := &receiver{out: out}
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks", g.Middleware(rc))
	return mux, rc, nil
}

// receiver is the application: it acts on each delivery it is handed. The
// Guard in front of it makes that once per delivery.
type receiver struct {
	mu      sync.Mutex
	out     io.Writer
	handled int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "unreadable body", http.StatusBadRequest)
		return
	}
	v, _ := replayguard.VerifiedFrom(r.Context())
	rc.mu.Lock()
	rc.handled++
	n := rc.handled
	rc.mu.Unlock()
	fmt.Fprintf(rc.out, "delivery %d from %s: %d bytes\n", n, v.KeyID, len(body))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]int{"handled": n})
}

// Handled returns how many deliveries reached the application.
func (rc *receiver) Handled() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.handled
}
