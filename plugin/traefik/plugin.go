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
// Nonces are exact or in Bloom filters (nonce.mode), in memory or in Redis
// (standalone, Cluster or Sentinel), with the local shield in front of
// Redis, as in the binary; Bloom filters in Redis are the binary's, bit for
// bit. A Bloom bucket that grows, or passes its false-positive target, is
// logged as a warning (the plugin has no metrics).
//
// What Traefik's interpreter imposes: no disk store, no PostgreSQL; a
// response without a Content-Length (chunked, streamed) or of type
// text/event-stream passes through unrecorded, and the wrapped response
// writer cannot flush early.
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
	log := newLogger(name)
	set, err := sharedStores(ctx, name, cfg, rc, log)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	g, err := replayguard.New(cfg,
		replayguard.WithNonceStore(set.nonces),
		replayguard.WithIdempotencyStore(set.idem),
		replayguard.WithLogger(log),
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
	if !forwardable(r.RequestURI) {
		replayguard.WriteProblem(w, unforwardable(r.RequestURI))
		return
	}
	// Traefik forwards what is left of the request's trailers: nothing
	// signs them.
	r.Trailer = nil
	h.guard.ServeHTTP(w, r)
}

// forwardable reports whether Traefik sends the request-target uri to the
// service as it is verified. Traefik's proxy rebuilds the target from the
// request line: the path through url.ParseRequestURI (escapes it cannot
// keep are re-encoded), the query with every ';' turned into '&'. An entry
// point with http.encodeQuerySemicolons: true hands the plugin, and the
// service, ';' as "%3B" instead, which passes. A target refused here is
// refused before anything is verified or stored.
//
// The plugin's code runs in Traefik's interpreter, which allocates every
// value a function body could hold on each call: the refusal is worded
// apart, by unforwardable.
func forwardable(uri string) bool {
	target := signature.OriginForm(uri)
	if target == "" || target[0] == '/' && strings.Trim(target, plainTarget) == "" {
		return true
	}
	u, err := url.ParseRequestURI(target)
	return err == nil && strings.IndexByte(u.RawQuery, ';') < 0 && u.RequestURI() == target
}

// plainTarget are the bytes of a target starting with '/' that Traefik
// forwards as they are: those url.URL.EscapedPath leaves unescaped in a
// path, and '?' (what follows the first is the query, passed on as sent).
// Neither '%' (an escape Traefik may re-encode) nor ';' (a query separator
// it rewrites) is among them. A target made of these alone needs no
// parsing.
const plainTarget = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~$&+,/:=@?"

// unforwardable returns why forwardable refused uri.
func unforwardable(uri string) error {
	target := signature.OriginForm(uri)
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return fmt.Errorf("%w: %s", replayguard.ErrTargetUnforwardable, err.Error())
	}
	if strings.IndexByte(u.RawQuery, ';') >= 0 {
		return fmt.Errorf("%w: Traefik passes ';' in a query on as '&' (set the entry point's http.encodeQuerySemicolons to keep it)", replayguard.ErrTargetUnforwardable)
	}
	return fmt.Errorf("%w: Traefik would send the path re-encoded", replayguard.ErrTargetUnforwardable)
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
