package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/config"
	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/signature"
)

// implicitRoute names the one route of a configuration: what access lines
// carry in their route field.
const implicitRoute = "default"

// headerRequestID carries the request id: taken from the client when sane,
// passed to the upstream and echoed on the response. In canonical form: it
// is set by map index.
const headerRequestID = "X-Request-Id"

// maxRequestIDBytes bounds a request id taken from a client.
const maxRequestIDBytes = 128

// maxLoggedBytes bounds the method and path an access line copies from a
// request.
const maxLoggedBytes = 1024

// newLogger is the process's logger: the level and format of the log
// section, on w.
func newLogger(w io.Writer, l config.Log) *slog.Logger {
	opts := &slog.HandlerOptions{Level: l.SlogLevel()}
	if l.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// accessLog writes one line per request — every request with access on,
// the rejected ones (up to a rate) otherwise.
type accessLog struct {
	logger  *slog.Logger
	access  bool
	trusted []*net.IPNet
	limit   *lineLimiter // nil: rejection lines are not bounded
}

func newAccessLog(logger *slog.Logger, l config.Log, trusted []*net.IPNet) *accessLog {
	a := &accessLog{logger: logger, access: *l.Access, trusted: trusted}
	if n := *l.RejectionsPerSecond; n > 0 {
		a.limit = newLineLimiter(n, time.Now)
	}
	return a
}

// droppedLines counts the rejection lines dropped past the rate.
func (a *accessLog) droppedLines() float64 {
	if a.limit == nil {
		return 0
	}
	return float64(a.limit.dropped.Load())
}

// endpoint is what a listener serves, for its access lines.
type endpoint uint8

const (
	// proxyEndpoint is the reverse proxy on listen.
	proxyEndpoint endpoint = iota
	// forwardAuthEndpoint is the forward-auth endpoint on auth_listen,
	// whose lines name the request a trusted proxy describes
	// (X-Forwarded-Method, X-Forwarded-Uri) rather than the check itself.
	forwardAuthEndpoint
)

// handler logs the requests next serves on endpoint under route.
func (a *accessLog) handler(route string, on endpoint, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ex := &exchange{route: route, requestID: requestID(first(r.Header[headerRequestID]))}
		ex.rw = statusWriter{ResponseWriter: w, requestID: ex.requestID}
		defer func() {
			// A handler that panics (the proxy aborting a response whose
			// client went away) still leaves its line.
			if p := recover(); p != nil {
				ex.aborted = true
				a.log(r, ex, start, on)
				panic(p)
			}
		}()
		next.ServeHTTP(&ex.rw, r.WithContext(replayguard.WithRequestTrace(r.Context(), ex)))
		a.log(r, ex, start, on)
	})
}

// log writes ex's line: always for a rejection (within the rate), for an
// accepted request only with access on. An accepted request with access
// off builds nothing.
func (a *accessLog) log(r *http.Request, ex *exchange, start time.Time, on endpoint) {
	rejected := ex.code != ""
	if !rejected && !a.access {
		return
	}
	ctx := r.Context()
	if !a.logger.Enabled(ctx, slog.LevelInfo) {
		return
	}
	var dropped uint64
	if rejected && a.limit != nil {
		var ok bool
		if ok, dropped = a.limit.allow(); !ok {
			return
		}
	}
	d := time.Since(start)
	_, trustedPeer := replayguard.TrustedPeer(a.trusted, r.RemoteAddr)
	method, target := r.Method, r.RequestURI
	if on == forwardAuthEndpoint && trustedPeer {
		if m, u := r.Header.Get(replayguard.HeaderForwardedMethod), r.Header.Get(replayguard.HeaderForwardedURI); m != "" && u != "" {
			method, target = m, u
		}
	}
	status := ex.rw.status
	if status == 0 {
		status = http.StatusOK
	}
	attrs := make([]slog.Attr, 0, 18)
	attrs = append(attrs,
		slog.String("route", ex.route),
		slog.String("method", bounded(method)),
		slog.String("path", pathOf(target)),
		slog.Int("status", status))
	if ex.code != "" {
		attrs = append(attrs, slog.String("code", ex.code))
	}
	if ex.keyID != "" {
		attrs = append(attrs, slog.String("key_id", ex.keyID))
	}
	if ex.subject != "" {
		attrs = append(attrs, slog.String("subject", ex.subject))
	}
	if ex.unverified {
		attrs = append(attrs, slog.Bool("unverified", true))
	}
	attrs = append(attrs, slog.String("idempotency", ex.outcome.String()))
	if ex.upstreamStatus != 0 {
		attrs = append(attrs, slog.Int("upstream_status", ex.upstreamStatus))
	}
	attrs = append(attrs,
		slog.Float64("duration_ms", math.Round(float64(d)/1e3)/1e3),
		slog.String("remote_addr", r.RemoteAddr))
	if trustedPeer {
		if client := clientAddr(a.trusted, r.Header.Values("X-Forwarded-For")); client != "" {
			attrs = append(attrs, slog.String("forwarded_for", client))
		}
	}
	attrs = append(attrs, slog.String("request_id", ex.requestID))
	if digest := keyDigest(ex.deliveryKey, r.Header); digest != "" {
		attrs = append(attrs, slog.String("idempotency_key_sha256", digest))
	}
	if ex.aborted {
		attrs = append(attrs, slog.Bool("aborted", true))
	}
	if dropped > 0 {
		attrs = append(attrs, slog.Uint64("lines_dropped", dropped))
	}
	// The record goes to the handler directly: Logger.LogAttrs would walk
	// the stack for a source position that no access line prints.
	rec := slog.NewRecord(time.Now(), slog.LevelInfo, "request", 0)
	rec.AddAttrs(attrs...)
	_ = a.logger.Handler().Handle(ctx, rec)
}

// exchange is one request as its access line reports it, filled in as it
// goes through the gateway: the Guard reports to it (RequestTrace), the
// proxy sets the upstream's status, statusWriter sees what the client got.
type exchange struct {
	rw statusWriter
	// route names the route that serves the request: implicitRoute
	// unless a router in front of the Guard names another.
	route     string
	requestID string
	// keyID and subject are the verified identity; deliveryKey is the
	// idempotency key a webhook preset reads from the delivery (digested,
	// never logged).
	keyID, subject, deliveryKey string
	code                        string
	outcome                     idempotency.Outcome
	upstreamStatus              int
	aborted                     bool
	// unverified marks a request of a route with scheme none.
	unverified bool
}

var _ replayguard.RequestTrace = (*exchange)(nil)

// Verified implements replayguard.RequestTrace; of v it keeps neither the
// replay key nor the timestamp.
func (e *exchange) Verified(v signature.Verified) {
	e.keyID, e.subject, e.deliveryKey = v.KeyID, v.Subject, v.IdempotencyKey
}

// Rejected implements replayguard.RequestTrace.
func (e *exchange) Rejected(code string) { e.code = code }

// Idempotency implements replayguard.RequestTrace.
func (e *exchange) Idempotency(o idempotency.Outcome) { e.outcome = o }

// exchangeFrom returns the exchange of the request whose context is ctx.
func exchangeFrom(ctx context.Context) *exchange {
	ex, _ := replayguard.RequestTraceFrom(ctx).(*exchange)
	return ex
}

// refuse answers err's problem outside the Guard (a target the proxy
// cannot forward, an upstream that did not answer), reporting its code to
// the request's trace as the Guard reports its own.
func refuse(w http.ResponseWriter, r *http.Request, err error) {
	if tr := replayguard.RequestTraceFrom(r.Context()); tr != nil {
		tr.Rejected(replayguard.ProblemFor(err).Code)
	}
	replayguard.WriteProblem(w, err)
}

// statusWriter records the status a response goes out with and echoes the
// request id on it.
type statusWriter struct {
	http.ResponseWriter
	requestID string
	status    int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
		// Set at the last moment: over the upstream's own value, and over
		// the one of the request whose stored response is replayed. The
		// name is canonical: set by index, not canonicalized again.
		w.Header()[headerRequestID] = []string{w.requestID}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (flush,
// hijack, deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// first is the first of a header's values, "" without one.
func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// requestID returns the request id a client sent when it is sane (1 to
// maxRequestIDBytes visible ASCII characters), else a new UUID.
func requestID(sent string) string {
	if sent == "" || len(sent) > maxRequestIDBytes {
		return uuid.NewString()
	}
	for i := 0; i < len(sent); i++ {
		if c := sent[i]; c < 0x21 || c > 0x7e {
			return uuid.NewString()
		}
	}
	return sent
}

// pathOf is the path of a request-target: no query, at most maxLoggedBytes.
func pathOf(target string) string {
	target = signature.OriginForm(target)
	if i := strings.IndexByte(target, '?'); i >= 0 {
		target = target[:i]
	}
	return bounded(target)
}

func bounded(s string) string {
	if len(s) > maxLoggedBytes {
		return s[:maxLoggedBytes]
	}
	return s
}

// clientAddr returns the client address that trusted proxies recorded in
// X-Forwarded-For (its header values, in order): from the end of the list,
// the first address that is not itself a trusted proxy, or the first of
// the list when all are. Entries before it were written by whoever sent
// the request, and prove nothing. "" when an entry on the way is not an
// IP address.
func clientAddr(trusted []*net.IPNet, values []string) string {
	client := ""
	for i := len(values) - 1; i >= 0; i-- {
		list := values[i]
		for list != "" {
			entry := list
			if j := strings.LastIndexByte(list, ','); j >= 0 {
				entry, list = list[j+1:], list[:j]
			} else {
				list = ""
			}
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			addr, err := netip.ParseAddr(entry)
			if err != nil {
				ap, perr := netip.ParseAddrPort(entry)
				if perr != nil {
					return ""
				}
				addr = ap.Addr()
			}
			client = addr.Unmap().WithZone("").String()
			if _, ok := replayguard.TrustedPeer(trusted, client); !ok {
				return client
			}
		}
	}
	return client
}

// keyDigest is the first 8 hex characters of the SHA-256 of the request's
// idempotency key — deliveryKey when a webhook preset read one, else the
// Idempotency-Key header's key (its value as sent when malformed) — or ""
// without one. Enough to tell operations apart in the logs, never the key.
func keyDigest(deliveryKey string, h http.Header) string {
	key := deliveryKey
	if key == "" {
		values := h.Values(idempotency.HeaderName)
		if len(values) == 0 {
			return ""
		}
		var err error
		if key, err = idempotency.ParseKey(values); err != nil {
			key = strings.Join(values, ", ")
		}
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:4])
}

// lineLimiter lets through up to perSecond lines a second on average, with
// a burst of as many (a token bucket), and counts the lines it drops.
type lineLimiter struct {
	now       func() time.Time
	perSecond float64

	mu     sync.Mutex
	tokens float64
	last   time.Time
	// since counts the lines dropped since the last one let through.
	since uint64

	dropped atomic.Uint64
}

func newLineLimiter(perSecond int, now func() time.Time) *lineLimiter {
	return &lineLimiter{now: now, perSecond: float64(perSecond), tokens: float64(perSecond), last: now()}
}

// allow reports whether a line may be written now and, when it may, how
// many were dropped since the last one written.
func (l *lineLimiter) allow() (bool, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if elapsed := now.Sub(l.last); elapsed > 0 {
		l.tokens = math.Min(l.perSecond, l.tokens+elapsed.Seconds()*l.perSecond)
	}
	l.last = now
	if l.tokens < 1 {
		l.since++
		l.dropped.Add(1)
		return false, 0
	}
	l.tokens--
	n := l.since
	l.since = 0
	return true, n
}
