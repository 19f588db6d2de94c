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
// one middleware (Traefik builds one instance per router and again on
// every configuration reload), never between two middlewares; or in Redis,
// where keys and scripts are those of the binary's go-redis stores: one
// Redis serves instances of every shape.
//
// What Traefik's interpreter imposes: nonce mode "exact" only (no Bloom,
// no local shield), no PostgreSQL, no Sentinel; a response without a
// Content-Length (chunked, streamed) or of type text/event-stream passes
// through unrecorded, and the wrapped response writer cannot flush early.
package traefik

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/signature"
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
	cfg, rc, err := config.model()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	set, err := sharedStores(ctx, name, cfg, rc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	g, err := replayguard.New(cfg,
		replayguard.WithNonceStore(set.nonces),
		replayguard.WithIdempotencyStore(set.idem),
		replayguard.WithLogger(newLogger(name)),
		replayguard.WithStreamUnknownLength(),
	)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &handler{guard: g.Middleware(&forward{next: next})}, nil
}

// handler refuses a target Traefik would not forward as verified, then runs
// the pipeline.
type handler struct {
	guard http.Handler
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := forwardable(r); err != nil {
		replayguard.WriteProblem(w, err)
		return
	}
	// Traefik forwards what is left of the request's trailers: nothing
	// signs them.
	r.Trailer = nil
	h.guard.ServeHTTP(w, r)
}

// forwardable refuses, before anything is verified or stored, a request
// whose target Traefik would not send to the service as it is verified.
// Traefik's proxy rebuilds the target from the request line: the path
// through url.ParseRequestURI (escapes it cannot keep are re-encoded), the
// query with every ';' turned into '&'. An entry point with
// http.encodeQuerySemicolons: true hands the plugin, and the service, ';'
// as "%3B" instead, which passes.
func forwardable(r *http.Request) error {
	target := signature.OriginForm(r.RequestURI)
	if target == "" {
		return nil
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return fmt.Errorf("%w: %s", replayguard.ErrTargetUnforwardable, err.Error())
	}
	if strings.IndexByte(u.RawQuery, ';') >= 0 {
		return fmt.Errorf("%w: Traefik passes ';' in a query on as '&' (set the entry point's http.encodeQuerySemicolons to keep it)", replayguard.ErrTargetUnforwardable)
	}
	if u.RequestURI() != target {
		return fmt.Errorf("%w: Traefik would send the path re-encoded", replayguard.ErrTargetUnforwardable)
	}
	return nil
}

// forward hands a verified request to next with its principal.
type forward struct {
	next http.Handler
}

// ServeHTTP sets the verified identity on the request the Guard's
// middleware hands over (a copy without trailers or headers posing as the
// gateway's) and passes it on.
func (f *forward) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if v, ok := replayguard.VerifiedFrom(r.Context()); ok {
		replayguard.SetIdentityHeaders(r.Header, v)
	}
	f.next.ServeHTTP(w, r)
}
