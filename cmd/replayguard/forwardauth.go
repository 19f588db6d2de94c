package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/signature"
)

// The headers a forward-auth request describes the original request with,
// as Traefik's ForwardAuth middleware sends them and an nginx auth_request
// location sets them.
const (
	xForwardedMethod = "X-Forwarded-Method"
	xForwardedProto  = "X-Forwarded-Proto"
	xForwardedHost   = "X-Forwarded-Host"
	xForwardedURI    = "X-Forwarded-Uri"
)

// hopByHop are the headers of one connection, never part of the original
// request (RFC 9110 §7.6.1, plus the legacy ones proxies still send).
var hopByHop = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// forwardAuth answers forward-auth requests: every request it receives asks
// whether the original request its X-Forwarded-* headers describe passes
// signature, timestamp window and nonce. 2xx with the principal in
// X-Replayguard-Key-Id lets it through; anything else is the problem the
// gateway would have answered. Idempotency does not apply: the endpoint
// never sees the upstream's response.
type forwardAuth struct {
	guard    *replayguard.Guard
	trusted  []*net.IPNet
	maxBody  int64
	observer replayguard.Observer // nil: no metrics
	logger   *slog.Logger
}

func newForwardAuth(g *replayguard.Guard, o replayguard.Observer, logger *slog.Logger) (*forwardAuth, error) {
	cfg := g.Config()
	nets, err := cfg.TrustedProxyNets()
	if err != nil {
		return nil, err
	}
	return &forwardAuth{guard: g, trusted: nets, maxBody: cfg.MaxBodyBytes, observer: o, logger: logger}, nil
}

func (fa *forwardAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if peer, ok := fa.trustedPeer(r.RemoteAddr); !ok {
		// Whoever is not a trusted proxy cannot say which request was
		// made: its headers never reach the verifier nor a store.
		fa.logger.LogAttrs(r.Context(), slog.LevelWarn, "forward-auth request from a peer outside trusted_proxies", slog.String("peer", peer))
		fa.reject(w, r, fmt.Errorf("%w: %s is not in trusted_proxies", replayguard.ErrForwardedUntrusted, peer), start)
		return
	}
	if err := forwardedComplete(r.Header); err != nil {
		fa.reject(w, r, err, start)
		return
	}
	body, err := fa.readBody(w, r)
	if err != nil {
		fa.reject(w, r, err, start)
		return
	}
	sr, err := forwardedRequest(r, body)
	if err != nil {
		fa.reject(w, r, err, start)
		return
	}
	v, err := fa.guard.Verify(r.Context(), sr)
	if err != nil {
		fa.reject(w, r, err, start)
		return
	}
	if fa.observer != nil {
		fa.observer.ObserveRequest("", time.Since(start))
	}
	h := w.Header()
	replayguard.SetIdentityHeaders(h, v)
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

// trustedPeer reports the IP of the TCP peer and whether trusted_proxies
// holds it.
func (fa *forwardAuth) trustedPeer(remoteAddr string) (string, bool) {
	return trustedPeer(fa.trusted, remoteAddr)
}

// trustedPeer reports the IP of the TCP peer remoteAddr and whether one of
// nets holds it.
func trustedPeer(nets []*net.IPNet, remoteAddr string) (string, bool) {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	// A zone (fe80::1%eth0) does not take part in the match.
	addr, _, _ := strings.Cut(host, "%")
	ip := net.ParseIP(addr)
	if ip == nil {
		return host, false
	}
	for _, n := range nets {
		if n.Contains(ip) {
			return host, true
		}
	}
	return host, false
}

// forwardedScheme returns the scheme a client used to reach a
// TLS-terminating proxy in front of the gateway: X-Forwarded-Proto, when
// the peer is one of nets and the value is http or https; "" otherwise
// (the default then applies: https only over TLS).
func forwardedScheme(nets []*net.IPNet) func(r *http.Request) string {
	return func(r *http.Request) string {
		if r.TLS != nil {
			return ""
		}
		proto := strings.ToLower(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto")))
		if proto != "http" && proto != "https" {
			return ""
		}
		if _, ok := trustedPeer(nets, r.RemoteAddr); !ok {
			return ""
		}
		return proto
	}
}

// reject writes err as the gateway's problem, counting it like the
// Guard counts its rejections.
func (fa *forwardAuth) reject(w http.ResponseWriter, r *http.Request, err error, start time.Time) {
	gone := r.Context().Err() != nil && errors.Is(err, r.Context().Err())
	if fa.observer != nil {
		code := "client_closed"
		if !gone {
			code = replayguard.ProblemFor(err).Code
		}
		fa.observer.ObserveRequest(code, time.Since(start))
	}
	// The status is the decision: even when the proxy looks gone (its
	// context cancelled, say after a half-close), a failed check must never
	// end as net/http's implicit 200.
	if errors.Is(err, replayguard.ErrBodyTooLarge) {
		w.Header().Set("Connection", "close")
	}
	replayguard.WriteProblem(w, err)
}

// readBody reads the forward-auth request's body, the original body when
// the proxy forwards it, up to max_body_bytes.
func (fa *forwardAuth) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > fa.maxBody {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", replayguard.ErrBodyTooLarge, r.ContentLength, fa.maxBody)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, fa.maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, fmt.Errorf("%w: over the %d byte limit", replayguard.ErrBodyTooLarge, fa.maxBody)
		}
		return nil, fmt.Errorf("%w: %w", replayguard.ErrBodyUnreadable, err)
	}
	if len(b) == 0 {
		return nil, nil
	}
	return b, nil
}

// forwardedComplete checks that the headers name a method and a
// request-target, before any body is read.
func forwardedComplete(h http.Header) error {
	for _, name := range []string{xForwardedMethod, xForwardedURI} {
		if h.Get(name) == "" {
			return fmt.Errorf("%w: %s missing", replayguard.ErrForwardedInvalid, name)
		}
	}
	return nil
}

// forwardedRequest rebuilds the original request a trusted proxy describes:
// method, scheme, host and request-target from X-Forwarded-Method, -Proto,
// -Host (else the Host header) and -Uri; the headers of the forward-auth
// request without the hop-by-hop ones and those four; body as given.
func forwardedRequest(r *http.Request, body []byte) (*signature.Request, error) {
	if err := forwardedComplete(r.Header); err != nil {
		return nil, err
	}
	for name := range r.Header {
		// The proxy in front replaces X-Replayguard-Key-Id and
		// X-Replayguard-Subject with this endpoint's answer (Traefik's
		// authResponseHeaders, nginx's proxy_set_header); any other name
		// that could pose as the gateway's would reach the upstream as the
		// client wrote it.
		if replayguard.IsGatewayHeader(name) && name != replayguard.HeaderKeyID && name != replayguard.HeaderSubject {
			return nil, fmt.Errorf("%w: the request carries %q, a header only the gateway may set", replayguard.ErrForwardedInvalid, name)
		}
	}
	method := r.Header.Get(xForwardedMethod)
	if !signature.IsToken(method) {
		return nil, fmt.Errorf("%w: %s is not a method", replayguard.ErrForwardedInvalid, xForwardedMethod)
	}
	target := r.Header.Get(xForwardedURI)
	if target[0] != '/' {
		return nil, fmt.Errorf("%w: %s must be a path and query starting with /", replayguard.ErrForwardedInvalid, xForwardedURI)
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get(xForwardedProto); p != "" {
		scheme = strings.ToLower(strings.TrimSpace(p))
		if scheme != "http" && scheme != "https" {
			return nil, fmt.Errorf("%w: %s must be http or https", replayguard.ErrForwardedInvalid, xForwardedProto)
		}
	}
	host := r.Header.Get(xForwardedHost)
	if host == "" {
		host = r.Host
	}
	h := r.Header.Clone()
	for _, c := range h.Values("Connection") {
		for _, name := range strings.Split(c, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
	for _, name := range []string{xForwardedMethod, xForwardedProto, xForwardedHost, xForwardedURI} {
		h.Del(name)
	}
	return &signature.Request{Method: method, Scheme: scheme, Host: host, Target: target, Header: h, Body: body}, nil
}
