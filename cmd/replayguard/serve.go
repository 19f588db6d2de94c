package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/bloom"
	"github.com/replayguard/replayguard/config"
	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/metrics"
	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/stores"
)

const shutdownGrace = 30 * time.Second

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCLI("serve", "serve [--config FILE]", `Runs the gateway: the reverse proxy on listen (when upstream is set), the
forward-auth endpoint on auth_listen (when set), the admin endpoints on
admin_listen. SIGTERM or SIGINT shuts it down gracefully.`, stderr)
	path := c.fs.String("config", "replayguard.yaml", "configuration `file`")
	if err := c.parse(args, stdout); err != nil {
		return err
	}
	if err := c.positional(0, 0, ""); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	if cfg.Upstream == "" && cfg.AuthListen == "" && len(cfg.Routes) == 0 {
		return config.Locate(*path, errUpstreamRequired())
	}
	logger := newLogger(stderr, cfg.Log)
	warnExposure(logger, *path)
	return config.Locate(*path, serve(ctx, cfg, logger, nil, *path))
}

// warnExposure warns when the configuration file holds literal secrets
// that users other than its owner can read.
func warnExposure(logger *slog.Logger, path string) {
	e, err := config.CheckExposure(path)
	if err != nil || e == nil {
		return
	}
	logger.Warn("configuration file with literal secrets is readable by group or others: chmod 600 it, or move the secrets to ${VAR} references",
		slog.String("path", e.Path), slog.String("mode", fmt.Sprintf("%#o", uint32(e.Mode))), slog.Any("fields", e.Fields))
}

// listeners lets callers (demo, tests) hand in already-bound listeners.
type listeners struct {
	main, admin, auth net.Listener
}

// serve runs the gateway until ctx is done, then shuts down gracefully: the
// reverse proxy on listen when upstream is set, the forward-auth endpoint
// on auth_listen when that is set, the admin endpoints on admin_listen.
// With path set, SIGHUP reloads the configuration from path.
func serve(ctx context.Context, cfg config.File, logger *slog.Logger, ls *listeners, path string) error {
	l := newLive(logger, path)
	gw, err := l.open(ctx, cfg, nil, false)
	if err != nil {
		return err
	}
	l.cur.Store(gw)
	defer l.close()
	if ls == nil {
		ls = &listeners{}
	}
	b, err := l.bind(ls)
	if err != nil {
		// A listener bound before a later one failed is not left open.
		for _, l := range []net.Listener{ls.main, ls.auth, ls.admin} {
			if l != nil {
				_ = l.Close()
			}
		}
		return err
	}
	if path != "" {
		stop := l.reloadOnHangup(ctx)
		defer stop()
	}
	return b.run(ctx, logger)
}

// gateway is one configuration at run time: its routes and Guards, its
// stores and metrics, and the handlers of each listener. A reload builds
// another and swaps it in; requests in flight finish on the one they
// started on.
type gateway struct {
	cfg    config.File
	logger *slog.Logger
	set    *stores.Set
	reg    *prometheus.Registry
	nets   []*net.IPNet
	router *router
	access *accessLog

	proxy, auth, admin http.Handler
	// refs counts the requests being served on this gateway.
	refs atomic.Int64
}

func (gw *gateway) build(ctx context.Context, prevAccess *accessLog) error {
	gw.logger.Info("stores", storeAttrs(gw.cfg)...)
	for _, w := range gw.set.Warnings {
		gw.logger.Warn(w)
	}
	newMetrics := metrics.New
	if len(gw.cfg.Routes) > 0 {
		newMetrics = metrics.NewRouted
	}
	m, err := newMetrics(gw.reg)
	if err != nil {
		return err
	}
	// A reload reusing the registry: the stores watched are this
	// configuration's.
	m.ResetWatches()
	if b, ok := gw.set.Nonce.(*bloom.Memory); ok {
		m.WatchBloom("nonce", b.Stats)
	}
	gw.set.WatchRedis(m)
	gw.set.WatchDisk(m)
	gw.set.WatchMemory(m)
	m.WatchFunc("replayguard_heap_live_bytes", "Live heap of the process at the last garbage collection (runtime/metrics /gc/heap/live:bytes): what the memory stores' bounds hold.", false, heapLive)
	if gw.nets, err = gw.cfg.TrustedProxyNets(); err != nil {
		return err
	}
	gw.access = newAccessLog(gw.logger, gw.cfg.Log, gw.nets)
	if prevAccess != nil && prevAccess.limit != nil && gw.access.limit != nil && prevAccess.limit.perSecond == gw.access.limit.perSecond {
		// The same bound: keep its bucket and its count of dropped lines.
		gw.access.limit = prevAccess.limit
	}
	m.WatchFunc("replayguard_log_dropped_total", "Rejection log lines dropped past log.rejections_per_second.", true, gw.access.droppedLines)
	if gw.router, err = gw.buildRoutes(ctx, m); err != nil {
		return err
	}
	gw.proxy = gw.access.handler(gw.router.initial(), proxyEndpoint, http.HandlerFunc(gw.router.serveProxy))
	gw.auth = gw.access.handler(gw.router.initial(), forwardAuthEndpoint, http.HandlerFunc(gw.router.serveAuth))
	gw.admin = adminHandler(gw.cfg, gw.set, gw.reg)
	return nil
}

// storeAttrs names the stores in effect and where the disk store lives.
func storeAttrs(cfg config.File) []any {
	attrs := []any{slog.String("nonce", cfg.Nonce.Store+" ("+cfg.Nonce.Mode+")")}
	if *cfg.Idempotency.Enabled {
		attrs = append(attrs, slog.String("idempotency", cfg.Idempotency.Store))
	} else {
		attrs = append(attrs, slog.String("idempotency", "off"))
	}
	if cfg.UsesDisk() {
		attrs = append(attrs, slog.String("disk_path", cfg.Disk.Path), slog.Bool("disk_fsync", *cfg.Disk.Fsync))
	}
	return attrs
}

// bound is the gateway's servers on their listeners.
type bound struct {
	servers []*http.Server
	lns     []net.Listener
	attrs   []any
}

func (b *bound) add(s *http.Server, l net.Listener, attrs ...any) {
	b.servers, b.lns, b.attrs = append(b.servers, s), append(b.lns, l), append(b.attrs, attrs...)
}

// bind puts the reverse proxy on listen when a route has an upstream, the
// forward-auth endpoint on auth_listen when set, and the admin endpoints
// on admin_listen, listening where ls has no listener yet. The servers
// serve whatever gateway is current.
func (l *live) bind(ls *listeners) (*bound, error) {
	gw := l.cur.Load()
	cfg, b := gw.cfg, &bound{}
	var err error
	if gw.router.proxies() {
		if ls.main == nil {
			if ls.main, err = net.Listen("tcp", cfg.Listen); err != nil {
				return nil, fmt.Errorf("listen: %w", err)
			}
		}
		b.add(newServer(cfg, l.handler(func(gw *gateway) http.Handler { return gw.proxy }), gw.logger), ls.main, slog.String("listen", ls.main.Addr().String()))
		b.attrs = append(b.attrs, gw.router.attrs()...)
	}
	if cfg.AuthListen != "" {
		if ls.auth == nil {
			if ls.auth, err = net.Listen("tcp", cfg.AuthListen); err != nil {
				return nil, fmt.Errorf("auth_listen: %w", err)
			}
		}
		b.add(newServer(cfg, l.handler(func(gw *gateway) http.Handler { return gw.auth }), gw.logger), ls.auth,
			slog.String("auth_listen", ls.auth.Addr().String()), slog.Any("trusted_proxies", cfg.TrustedProxies))
	}
	if len(b.servers) == 0 {
		return nil, errUpstreamRequired()
	}
	if ls.admin == nil && cfg.AdminListen != "" {
		if ls.admin, err = net.Listen("tcp", cfg.AdminListen); err != nil {
			return nil, fmt.Errorf("admin_listen: %w", err)
		}
	}
	b.attrs = append(b.attrs, slog.String("scheme", cfg.Scheme), slog.String("nonce_store", cfg.Nonce.Store), slog.String("nonce_mode", cfg.Nonce.Mode),
		slog.String("fail_mode", cfg.FailMode), slog.String("version", versionString()))
	if ls.admin != nil {
		b.add(newServer(cfg, l.handler(func(gw *gateway) http.Handler { return gw.admin }), gw.logger), ls.admin, slog.String("admin_listen", ls.admin.Addr().String()))
	}
	return b, nil
}

// run serves until ctx is done or a server fails, then shuts down
// gracefully.
func (b *bound) run(ctx context.Context, logger *slog.Logger) error {
	errc := make(chan error, len(b.servers))
	for i := range b.servers {
		go func(s *http.Server, l net.Listener) {
			if err := s.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}(b.servers[i], b.lns[i])
	}
	logger.Info("replayguard serving", b.attrs...)

	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	var errs []error
	for _, s := range b.servers {
		errs = append(errs, s.Shutdown(sctx))
	}
	return errors.Join(errs...)
}

// upstreamProxy is the reverse proxy to the upstream behind the Guard's
// middleware.
type upstreamProxy struct {
	*httputil.ReverseProxy
	base *url.URL // the upstream URL
}

// newProxy is the reverse proxy to upstream. The upstream runs the
// request that was verified: the request-target byte for byte (joined to
// the upstream URL's path), the identity in the gateway's headers, no
// header of the client's that could pose as one of them, no trailers.
func newProxy(upstream string, logger *slog.Logger) (*upstreamProxy, error) {
	up, err := url.Parse(upstream)
	if err != nil {
		return nil, &replayguard.FieldError{Field: "upstream", Err: err}
	}
	// The default transport keeps 2 idle connections per host: under
	// concurrency most requests would dial the upstream anew.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 1024
	tr.MaxIdleConnsPerHost = 512
	return &upstreamProxy{base: up, ReverseProxy: &httputil.ReverseProxy{
		Transport:  tr,
		BufferPool: copyBuffers,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(up)
			pr.SetXForwarded()
			pr.Out.Host = pr.In.Host
			// net/http's proxy re-encodes a query it cannot parse (one
			// with ';' or a bad %-escape) and may re-escape the path:
			// send the target as it was verified instead. forwardable
			// refused, before verification, what cannot be sent so.
			if t, err := forwardTarget(up, pr.In.RequestURI); err == nil {
				pr.Out.URL.Opaque, pr.Out.URL.RawQuery, pr.Out.URL.ForceQuery = t.opaque, t.rawQuery, t.forceQuery
			}
			// The upstream learns who signed; a client cannot claim it.
			// The Guard's middleware handed over a request without
			// trailers or headers posing as the gateway's.
			if v, ok := replayguard.VerifiedFrom(pr.In.Context()); ok {
				replayguard.SetIdentityHeaders(pr.Out.Header, v)
			}
			if ex := exchangeFrom(pr.In.Context()); ex != nil {
				pr.Out.Header[headerRequestID] = []string{ex.requestID}
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			if ex := exchangeFrom(resp.Request.Context()); ex != nil {
				ex.upstreamStatus = resp.StatusCode
			}
			return nil
		},
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			logger.LogAttrs(r.Context(), slog.LevelError, "upstream failed", slog.String("error", err.Error()))
			// The upstream was not reached or did not answer: nothing to
			// store, so a retry with the same key runs again.
			idempotency.Abandon(w)
			refuse(w, r, fmt.Errorf("%w: %w", replayguard.ErrUpstreamUnavailable, err))
		},
	}}, nil
}

// copyBuffers are the buffers the proxies copy response bodies through:
// without a pool each response allocates (and zeroes) one of 32 KiB.
var copyBuffers = &bufferPool{}

// bufferPool implements httputil.BufferPool on a sync.Pool.
type bufferPool struct{ p sync.Pool }

const copyBufferBytes = 32 << 10

func (b *bufferPool) Get() []byte {
	if buf, ok := b.p.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, copyBufferBytes)
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) != copyBufferBytes {
		return
	}
	buf = buf[:copyBufferBytes]
	b.p.Put(&buf)
}

// outTarget is how the request line to the upstream is built: Opaque is
// the path sent as is, then "?" and the raw query.
type outTarget struct {
	opaque     string
	rawQuery   string
	forceQuery bool
}

// forwardTarget joins the request-target a client sent (requestURI, origin
// or absolute form) to the upstream URL's path, keeping every byte of the
// client's path and query. It fails for a target that cannot travel so:
// one that is not a path ("*"), or a path that would read as an authority
// ("//host/…" with an upstream URL without a path).
func forwardTarget(up *url.URL, requestURI string) (outTarget, error) {
	target := signature.OriginForm(requestURI)
	if target == "" || target[0] != '/' {
		return outTarget{}, fmt.Errorf("%w: %q is not a path", replayguard.ErrTargetUnforwardable, target)
	}
	path, query, hasQuery := strings.Cut(target, "?")
	base := strings.TrimSuffix(up.EscapedPath(), "/")
	joined := base + path
	if strings.HasPrefix(joined, "//") {
		return outTarget{}, fmt.Errorf("%w: a path starting with // would name a host", replayguard.ErrTargetUnforwardable)
	}
	t := outTarget{opaque: joined, rawQuery: query, forceQuery: hasQuery && query == ""}
	if up.RawQuery != "" {
		t.rawQuery = up.RawQuery
		if query != "" {
			t.rawQuery += "&" + query
		}
		t.forceQuery = false
	}
	return t, nil
}

// forwardable refuses, before anything is verified or stored, a request
// whose target the proxy could not send to the upstream as it is verified.
func forwardable(up *url.URL, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := forwardTarget(up, r.RequestURI); err != nil {
			refuse(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func errUpstreamRequired() error {
	return &replayguard.FieldError{Field: "upstream", Err: errors.New("required by serve, unless auth_listen is set for a forward-auth-only deployment")}
}

// newServer is an HTTP server bounded by the server section of cfg.
func newServer(cfg config.File, h http.Handler, logger *slog.Logger) *http.Server {
	sv := cfg.WithDefaults().Server
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: sv.ReadHeaderTimeout.D(),
		ReadTimeout:       sv.ReadTimeout.D(),
		WriteTimeout:      sv.WriteTimeout.D(),
		IdleTimeout:       sv.IdleTimeout.D(),
		MaxHeaderBytes:    sv.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// adminHandler serves /healthz, /readyz and /metrics.
func adminHandler(cfg config.File, set *stores.Set, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		timeout := cfg.Redis.WithDefaults().Timeout.D() * 5
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := set.Ping(ctx); err != nil {
			if cfg.FailMode == replayguard.FailOpen {
				_, _ = fmt.Fprintf(w, "degraded (fail_mode open): %v\n", err)
				return
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
		// Still ready: the stores answer. A warning (such as a Redis
		// eviction policy that can drop nonces) is named for whoever
		// looks, without taking the instance out of the load balancer.
		for _, warning := range set.Warnings {
			_, _ = fmt.Fprintf(w, "warning: %s\n", warning)
		}
	})
	return mux
}
