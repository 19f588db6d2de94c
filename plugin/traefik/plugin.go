// Package traefik is replayguard's Traefik v3 middleware plugin. Traefik
// runs it in its Yaegi interpreter: `make traefik-plugin` assembles the
// local-plugin tree (plugins-local/src/<module>/ with .traefik.yml and a
// vendor directory), which Traefik loads through
// experimental.localPlugins.
//
// Each request is verified (signature, timestamp window, nonce) before
// the next handler sees it, and covered methods go through the
// Idempotency-Key dedupe layer, exactly as in the binary and the Caddy
// module. Stores are in memory by default and shared by every instance of
// the middleware with the same store configuration (Traefik builds one
// instance per router and again on every configuration reload), or in
// Redis, where keys and scripts are those of the binary's go-redis stores:
// one Redis serves instances of every shape.
//
// What Traefik's interpreter imposes: nonce mode "exact" only (no Bloom,
// no local shield), no PostgreSQL, no Sentinel; a response without a
// Content-Length (chunked, streamed) or of type text/event-stream passes
// through unrecorded, and the wrapped response writer cannot flush early.
package traefik

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/replayguard/replayguard"
)

// VerifiedKeyHeader carries the verified identity (the key entry id) to the
// next handler. A client-sent value is always replaced.
const VerifiedKeyHeader = replayguard.HeaderKeyID

// VerifiedSubjectHeader carries the subject within that key (a JWT sub),
// when the request has one. A client-sent value is always removed.
const VerifiedSubjectHeader = replayguard.HeaderSubject

// New returns the replayguard pipeline in front of next. Traefik calls it
// for every router using the middleware and on every reload.
func New(ctx context.Context, next http.Handler, config *Config, name string) (http.Handler, error) {
	if config == nil {
		config = CreateConfig()
	}
	cfg, err := config.model()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	set, err := sharedStores(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	g, err := replayguard.New(cfg,
		replayguard.WithNonceStore(set.nonces),
		replayguard.WithIdempotencyStore(set.idem),
		replayguard.WithLogger(slog.Default().With(slog.String("middleware", name))),
		replayguard.WithStreamUnknownLength(),
	)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &handler{guard: g.Middleware(&forward{next: next})}, nil
}

// handler strips a client's claim of a verified identity, then runs the
// pipeline.
type handler struct {
	guard http.Handler
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	replayguard.StripGatewayHeaders(r.Header)
	r.Trailer = nil
	h.guard.ServeHTTP(w, r)
}

// forward hands a verified request to next with its principal.
type forward struct {
	next http.Handler
}

func (f *forward) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.Trailer = nil
	if v, ok := replayguard.VerifiedFrom(r.Context()); ok {
		replayguard.SetIdentityHeaders(r.Header, v)
	}
	f.next.ServeHTTP(w, r)
}
