package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/config"
	"github.com/replayguard/replayguard/metrics"
	"github.com/replayguard/replayguard/signature"
)

// route is one route of the gateway at run time: what it matches and the
// handlers of its reverse proxy and of its forward-auth check.
type route struct {
	name     string
	open     bool   // scheme none: nothing verified
	host     string // lower case, no port; "" matches every host
	prefix   string // without a trailing slash; "" matches every path
	upstream string
	proxy    http.Handler // nil without an upstream
	auth     http.Handler
	cfg      replayguard.Config
}

// router sends each request to its route: the one whose host matches
// (a route naming a host before a hostless one), then the longest path
// prefix, whole segments only. A configuration without routes has one
// implicit route that matches everything as it is.
type router struct {
	routes   []*route // in the order they are tried
	implicit bool
	trusted  []*net.IPNet
}

// buildRoutes builds the router of cfg, its Guards on the gateway's stores
// and reporting to m.
func (gw *gateway) buildRoutes(ctx context.Context, m *metrics.Metrics) (*router, error) {
	cfg := gw.cfg
	rt := &router{trusted: gw.nets}
	if len(cfg.Routes) == 0 {
		g, err := replayguard.New(cfg.Config, append(gw.set.Options(), gw.guardOptions(m)...)...)
		if err != nil {
			return nil, err
		}
		r, err := gw.newRoute(implicitRoute, cfg.Upstream, g)
		if err != nil {
			return nil, err
		}
		rt.routes, rt.implicit = []*route{r}, true
		return rt, nil
	}
	for i, rc := range cfg.Routes {
		var g *replayguard.Guard
		if rc.Config.Scheme != config.SchemeNone {
			ns, err := gw.set.NonceFor(ctx, rc.Config)
			if err != nil {
				return nil, fmt.Errorf("routes[%d] (%s): %w", i, rc.Name, err)
			}
			opts := append(gw.guardOptions(m.Route(rc.Name)), replayguard.WithNonceStore(ns), replayguard.WithScope(rc.Name))
			if gw.set.Idempotency != nil {
				opts = append(opts, replayguard.WithIdempotencyStore(gw.set.Idempotency))
			}
			if g, err = replayguard.New(rc.Config, opts...); err != nil {
				return nil, fmt.Errorf("routes[%d] (%s): %w", i, rc.Name, err)
			}
		}
		r, err := gw.newRoute(rc.Name, rc.Upstream, g)
		if err != nil {
			return nil, fmt.Errorf("routes[%d] (%s): %w", i, rc.Name, err)
		}
		r.host = normalHost(rc.Match.Host)
		r.prefix = strings.TrimSuffix(rc.Match.PathPrefix, "/")
		r.cfg = rc.Config
		rt.routes = append(rt.routes, r)
	}
	rt.order()
	return rt, nil
}

// order puts the routes in the order they are tried: those naming a host
// first, then the longest prefix first.
func (rt *router) order() {
	slices.SortStableFunc(rt.routes, func(a, b *route) int {
		if (a.host == "") != (b.host == "") {
			if a.host != "" {
				return -1
			}
			return 1
		}
		return cmp.Compare(len(b.prefix), len(a.prefix))
	})
}

// guardOptions are the options every route's Guard shares.
func (gw *gateway) guardOptions(m *metrics.Metrics) []replayguard.Option {
	return []replayguard.Option{replayguard.WithLogger(gw.logger), replayguard.WithObserver(m),
		replayguard.WithRequestScheme(replayguard.ForwardedScheme(gw.nets))}
}

// newRoute is a route named name in front of upstream, verified by g; a
// nil g verifies nothing (scheme none).
func (gw *gateway) newRoute(name, upstream string, g *replayguard.Guard) (*route, error) {
	r := &route{name: name, upstream: upstream, auth: allow{}, open: g == nil}
	if g != nil {
		r.auth = g.ForwardAuth(gw.nets)
	}
	if upstream == "" {
		return r, nil
	}
	proxy, err := newProxy(upstream, gw.logger)
	if err != nil {
		return nil, err
	}
	var h http.Handler = proxy
	if g != nil {
		h = g.Middleware(proxy)
	}
	r.proxy = forwardable(proxy.base, h)
	return r, nil
}

// allow is the forward-auth check of a route that verifies nothing.
type allow struct{}

func (allow) ServeHTTP(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }

// match returns the route of a request to host with path, nil when none
// matches.
func (rt *router) match(host, path string) *route {
	host = normalHost(host)
	for _, r := range rt.routes {
		if r.host != "" && r.host != host {
			continue
		}
		if r.prefix == "" || path == r.prefix || strings.HasPrefix(path, r.prefix) && path[len(r.prefix)] == '/' {
			return r
		}
	}
	return nil
}

// normalHost is host in lower case without its port.
func normalHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
}

// route returns the route of a request to host for target, or the
// problem to answer: an ambiguous path, or no route.
func (rt *router) route(host, target string) (*route, error) {
	if rt.implicit {
		return rt.routes[0], nil
	}
	path := signature.OriginForm(target)
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if config.AmbiguousPath(path) {
		return nil, fmt.Errorf("%w: %q has a dot-segment, %%2F or %%2E", replayguard.ErrTargetAmbiguous, path)
	}
	r := rt.match(host, path)
	if r == nil {
		return nil, fmt.Errorf("%w: %s%s", replayguard.ErrRouteNotFound, normalHost(host), path)
	}
	return r, nil
}

// serveProxy is the reverse proxy on listen.
func (rt *router) serveProxy(w http.ResponseWriter, r *http.Request) {
	rte, err := rt.route(r.Host, r.RequestURI)
	if err == nil && rte.proxy == nil {
		err = fmt.Errorf("%w: route %s has no upstream", replayguard.ErrRouteNotFound, rte.name)
	}
	if err != nil {
		refuse(w, r, err)
		return
	}
	if ex := exchangeFrom(r.Context()); ex != nil {
		ex.route, ex.unverified = rte.name, rte.open
	}
	rte.proxy.ServeHTTP(w, r)
}

// serveAuth is the forward-auth endpoint on auth_listen: the route is the
// one of the request a trusted proxy describes.
func (rt *router) serveAuth(w http.ResponseWriter, r *http.Request) {
	if rt.implicit {
		rt.routes[0].auth.ServeHTTP(w, r)
		return
	}
	if _, ok := replayguard.TrustedPeer(rt.trusted, r.RemoteAddr); !ok {
		refuse(w, r, fmt.Errorf("%w: %s", replayguard.ErrForwardedUntrusted, r.RemoteAddr))
		return
	}
	uri := r.Header.Get(replayguard.HeaderForwardedURI)
	if !strings.HasPrefix(uri, "/") {
		refuse(w, r, fmt.Errorf("%w: %s %q is not a path", replayguard.ErrForwardedInvalid, replayguard.HeaderForwardedURI, uri))
		return
	}
	rte, err := rt.route(r.Header.Get(replayguard.HeaderForwardedHost), uri)
	if err != nil {
		refuse(w, r, err)
		return
	}
	if ex := exchangeFrom(r.Context()); ex != nil {
		ex.route, ex.unverified = rte.name, rte.open
	}
	rte.auth.ServeHTTP(w, r)
}

// proxies reports a route with an upstream: the reverse proxy has
// something to serve.
func (rt *router) proxies() bool {
	for _, r := range rt.routes {
		if r.proxy != nil {
			return true
		}
	}
	return false
}

// attrs name the upstream, or each route and its upstream, for the
// start-up line.
func (rt *router) attrs() []any {
	if rt.implicit {
		return []any{slog.String("upstream", rt.routes[0].upstream)}
	}
	routes := make([]string, 0, len(rt.routes))
	for _, r := range rt.routes {
		routes = append(routes, r.name+" "+r.host+r.prefix+" → "+cmp.Or(r.upstream, "(forward-auth only)"))
	}
	return []any{slog.Any("routes", routes)}
}

// initial is the route an access line names before the router chose one:
// the implicit route's name, or none (a request no route matched).
func (rt *router) initial() string {
	if rt.implicit {
		return implicitRoute
	}
	return ""
}
