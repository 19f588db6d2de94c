package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/bloom"
	"github.com/replayguard/replayguard/config"
	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/metrics"
	"github.com/replayguard/replayguard/stores"
)

var errUsage = errors.New("usage")

// keyIDHeader tells the upstream which principal signed the request.
const keyIDHeader = "X-Replayguard-Key-Id"

const shutdownGrace = 30 * time.Second

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "replayguard.yaml", "configuration file")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	if cfg.Upstream == "" && cfg.AuthListen == "" {
		return errUpstreamRequired()
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	return serve(ctx, cfg, logger, nil)
}

// listeners lets callers (demo, tests) hand in already-bound listeners.
type listeners struct {
	main, admin, auth net.Listener
}

// serve runs the gateway until ctx is done, then shuts down gracefully: the
// reverse proxy on listen when upstream is set, the forward-auth endpoint
// on auth_listen when that is set, the admin endpoints on admin_listen.
func serve(ctx context.Context, cfg replayguard.Config, logger *slog.Logger, ls *listeners) error {
	set, err := stores.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { _ = set.Close() }()
	for _, w := range set.Warnings {
		logger.Warn(w)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := metrics.New(reg)
	if err != nil {
		return err
	}
	if b, ok := set.Nonce.(*bloom.Memory); ok {
		m.WatchBloom("nonce", b.Stats)
	}
	set.WatchRedis(m)
	nets, err := cfg.TrustedProxyNets()
	if err != nil {
		return err
	}
	g, err := replayguard.New(cfg, append(set.Options(), replayguard.WithLogger(logger), replayguard.WithObserver(m),
		replayguard.WithRequestScheme(forwardedScheme(nets)))...)
	if err != nil {
		return err
	}
	if ls == nil {
		ls = &listeners{}
	}
	var (
		servers []*http.Server
		lns     []net.Listener
		attrs   []any
		serving bool
	)
	defer func() {
		// A listener bound before a later one failed is not left open.
		if !serving {
			for _, l := range []net.Listener{ls.main, ls.auth, ls.admin} {
				if l != nil {
					_ = l.Close()
				}
			}
		}
	}()
	if cfg.Upstream != "" {
		proxy, err := newProxy(cfg, logger)
		if err != nil {
			return err
		}
		if ls.main == nil {
			if ls.main, err = net.Listen("tcp", cfg.Listen); err != nil {
				return fmt.Errorf("listen: %w", err)
			}
		}
		servers = append(servers, newServer(cfg, g.Middleware(proxy), logger))
		lns = append(lns, ls.main)
		attrs = append(attrs, slog.String("listen", ls.main.Addr().String()), slog.String("upstream", cfg.Upstream))
	}
	if cfg.AuthListen != "" {
		fa, err := newForwardAuth(g, m, logger)
		if err != nil {
			return err
		}
		if ls.auth == nil {
			if ls.auth, err = net.Listen("tcp", cfg.AuthListen); err != nil {
				return fmt.Errorf("auth_listen: %w", err)
			}
		}
		servers = append(servers, newServer(cfg, fa, logger))
		lns = append(lns, ls.auth)
		attrs = append(attrs, slog.String("auth_listen", ls.auth.Addr().String()), slog.Any("trusted_proxies", cfg.TrustedProxies))
	}
	if len(servers) == 0 {
		return errUpstreamRequired()
	}
	if ls.admin == nil && cfg.AdminListen != "" {
		if ls.admin, err = net.Listen("tcp", cfg.AdminListen); err != nil {
			return fmt.Errorf("admin_listen: %w", err)
		}
	}
	if ls.admin != nil {
		servers = append(servers, newServer(cfg, adminHandler(cfg, set, reg), logger))
		lns = append(lns, ls.admin)
	}
	serving = true
	errc := make(chan error, len(servers))
	for i := range servers {
		go func(s *http.Server, l net.Listener) {
			if err := s.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}(servers[i], lns[i])
	}
	attrs = append(attrs, slog.String("scheme", cfg.Scheme), slog.String("nonce_store", cfg.Nonce.Store), slog.String("nonce_mode", cfg.Nonce.Mode),
		slog.String("fail_mode", cfg.FailMode), slog.String("version", versionString()))
	if ls.admin != nil {
		attrs = append(attrs, slog.String("admin_listen", ls.admin.Addr().String()))
	}
	logger.Info("replayguard serving", attrs...)

	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	var errs []error
	for _, s := range servers {
		errs = append(errs, s.Shutdown(sctx))
	}
	return errors.Join(errs...)
}

// newProxy is the reverse proxy to upstream behind the Guard's middleware.
func newProxy(cfg replayguard.Config, logger *slog.Logger) (*httputil.ReverseProxy, error) {
	up, err := url.Parse(cfg.Upstream)
	if err != nil {
		return nil, &replayguard.FieldError{Field: "upstream", Err: err}
	}
	// The default transport keeps 2 idle connections per host: under
	// concurrency most requests would dial the upstream anew.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 1024
	tr.MaxIdleConnsPerHost = 512
	return &httputil.ReverseProxy{
		Transport: tr,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(up)
			pr.SetXForwarded()
			pr.Out.Host = pr.In.Host
			// The upstream learns who signed; a client cannot claim it.
			pr.Out.Header.Del(keyIDHeader)
			if v, ok := replayguard.VerifiedFrom(pr.In.Context()); ok {
				pr.Out.Header.Set(keyIDHeader, v.Principal)
			}
		},
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			logger.LogAttrs(r.Context(), slog.LevelError, "upstream failed", slog.String("error", err.Error()))
			// The upstream was not reached or did not answer: nothing to
			// store, so a retry with the same key runs again.
			idempotency.Abandon(w)
			writeUpstreamError(w)
		},
	}, nil
}

func errUpstreamRequired() error {
	return &replayguard.FieldError{Field: "upstream", Err: errors.New("required by serve, unless auth_listen is set for a forward-auth-only deployment")}
}

// newServer is an HTTP server bounded by the server section of cfg.
func newServer(cfg replayguard.Config, h http.Handler, logger *slog.Logger) *http.Server {
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

func writeUpstreamError(w http.ResponseWriter) {
	p := replayguard.Problem{Type: replayguard.ProblemType + "upstream_unavailable", Title: "Upstream unavailable",
		Status: http.StatusBadGateway, Code: "upstream_unavailable", Detail: "the upstream did not answer"}
	b, _ := json.Marshal(p)
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_, _ = w.Write(b)
}

// adminHandler serves /healthz, /readyz and /metrics.
func adminHandler(cfg replayguard.Config, set *stores.Set, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		timeout := cfg.Redis.Timeout.D() * 5
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
