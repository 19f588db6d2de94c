package replayguard

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/replayguard/replayguard/signature"
)

// The headers a forward-auth request describes the original request with,
// as Traefik's ForwardAuth middleware sends them and an nginx auth_request
// location sets them.
const (
	HeaderForwardedMethod = "X-Forwarded-Method"
	HeaderForwardedProto  = "X-Forwarded-Proto"
	HeaderForwardedHost   = "X-Forwarded-Host"
	HeaderForwardedURI    = "X-Forwarded-Uri"
)

// ForwardAuth returns the forward-auth endpoint of Traefik's ForwardAuth
// middleware and nginx's auth_request: every request it receives asks
// whether the original request its X-Forwarded-* headers describe passes
// the body limit, signature, timestamp window and nonce. 200 with
// X-Replayguard-Key-Id (and X-Replayguard-Subject) lets it through;
// anything else is the problem the Middleware would have answered.
// Idempotency does not apply: the endpoint never sees the upstream's
// response.
//
// Only a peer in trusted may describe a request: any other gets 403
// forwarded_untrusted before anything it sent is read.
func (g *Guard) ForwardAuth(trusted []*net.IPNet) http.Handler {
	return &forwardAuth{g: g, trusted: trusted}
}

type forwardAuth struct {
	g       *Guard
	trusted []*net.IPNet
}

func (fa *forwardAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g := fa.g
	start := time.Now()
	tr := RequestTraceFrom(r.Context())
	if peer, ok := TrustedPeer(fa.trusted, r.RemoteAddr); !ok {
		// Whoever is not a trusted proxy cannot say which request was
		// made: its headers never reach the verifier nor a store.
		g.logger.LogAttrs(r.Context(), slog.LevelWarn, "forward-auth request from a peer outside trusted_proxies", slog.String("peer", peer))
		g.reject(w, r, fmt.Errorf("%w: %s is not in trusted_proxies", ErrForwardedUntrusted, peer), start, tr)
		return
	}
	if err := forwardedComplete(r.Header); err != nil {
		g.reject(w, r, err, start, tr)
		return
	}
	body, err := readBody(g, r)
	if err != nil {
		g.reject(w, r, err, start, tr)
		return
	}
	if len(body) == 0 {
		body = nil
	}
	sr, err := forwardedRequest(r, body)
	if err != nil {
		g.reject(w, r, err, start, tr)
		return
	}
	if err := sr.Check(); err != nil {
		g.reject(w, r, err, start, tr)
		return
	}
	v, err := g.verify(r.Context(), sr, tr)
	if err != nil {
		g.reject(w, r, err, start, tr)
		return
	}
	g.observeAccepted(start)
	h := w.Header()
	SetIdentityHeaders(h, v)
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

// TrustedPeer reports the IP of the TCP peer remoteAddr and whether one of
// nets holds it.
func TrustedPeer(nets []*net.IPNet, remoteAddr string) (string, bool) {
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

// ForwardedScheme returns, for WithRequestScheme, the scheme a client used
// to reach a TLS-terminating proxy in front of the gateway: its
// X-Forwarded-Proto, when the peer is one of nets and the value is http or
// https; "" otherwise (the default then applies: https only over TLS).
func ForwardedScheme(nets []*net.IPNet) func(r *http.Request) string {
	return func(r *http.Request) string {
		if r.TLS != nil {
			return ""
		}
		proto := strings.ToLower(strings.TrimSpace(r.Header.Get(HeaderForwardedProto)))
		if proto != "http" && proto != "https" {
			return ""
		}
		if _, ok := TrustedPeer(nets, r.RemoteAddr); !ok {
			return ""
		}
		return proto
	}
}

// forwardedComplete checks that the headers name a method and a
// request-target, before any body is read.
func forwardedComplete(h http.Header) error {
	for _, name := range []string{HeaderForwardedMethod, HeaderForwardedURI} {
		if h.Get(name) == "" {
			return fmt.Errorf("%w: %s missing", ErrForwardedInvalid, name)
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
		if IsGatewayHeader(name) && name != HeaderKeyID && name != HeaderSubject {
			return nil, fmt.Errorf("%w: the request carries %q, a header only the gateway may set", ErrForwardedInvalid, name)
		}
	}
	method := r.Header.Get(HeaderForwardedMethod)
	if !signature.IsToken(method) {
		return nil, fmt.Errorf("%w: %s is not a method", ErrForwardedInvalid, HeaderForwardedMethod)
	}
	target := r.Header.Get(HeaderForwardedURI)
	if target[0] != '/' {
		return nil, fmt.Errorf("%w: %s must be a path and query starting with /", ErrForwardedInvalid, HeaderForwardedURI)
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get(HeaderForwardedProto); p != "" {
		scheme = strings.ToLower(strings.TrimSpace(p))
		if scheme != "http" && scheme != "https" {
			return nil, fmt.Errorf("%w: %s must be http or https", ErrForwardedInvalid, HeaderForwardedProto)
		}
	}
	host := r.Header.Get(HeaderForwardedHost)
	if host == "" {
		host = r.Host
	}
	h := r.Header.Clone()
	RemoveHopByHop(h)
	for _, name := range []string{HeaderForwardedMethod, HeaderForwardedProto, HeaderForwardedHost, HeaderForwardedURI} {
		h.Del(name)
	}
	return &signature.Request{Method: method, Scheme: scheme, Host: host, Target: target, Header: h, Body: body}, nil
}
