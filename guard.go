package replayguard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/timestamp"
)

// Guard runs the pipeline. It is safe for concurrent use.
type Guard struct {
	cfg       Config
	scheme    signature.Scheme
	window    timestamp.Window
	nonces    nonce.Store
	idemStore idempotency.Store
	idem      *idempotency.Deduper
	// covers holds, for each standard method, whether idem covers it;
	// other methods are asked of idem. Nil when idem is.
	covers map[string]bool
	// joint adds a covered request's nonce in its claim's write, when the
	// idempotency store keeps the Guard's nonces too; else nil.
	joint        idempotency.NonceClaimer
	now          func() time.Time
	logger       *slog.Logger
	errorHandler func(http.ResponseWriter, *http.Request, error)
	maxBody      int64
	failOpen     bool
	observer     Observer
	quotas       QuotaObserver // nil unless the Observer implements it

	// keyIDs are the configured key ids; a verified key id outside them
	// comes from the jwt.jwks_url key set, which is charged as one entry,
	// jwksOwner (empty without such a set).
	keyIDs    map[string]bool
	jwksOwner string

	streamUnknownLength bool
	requestScheme       func(*http.Request) string

	// scope prefixes every principal and key entry in the stores; empty
	// without WithScope.
	scope string

	failOpenPasses atomic.Uint64
}

// Option configures a Guard.
type Option func(*Guard)

// WithClock sets the clock of the timestamp window. Default time.Now.
func WithClock(now func() time.Time) Option {
	return func(g *Guard) { g.now = now }
}

// WithNonceStore sets the replay store, overriding nonce.store and
// nonce.mode. Default: the exact in-memory store.
func WithNonceStore(s nonce.Store) Option {
	return func(g *Guard) { g.nonces = s }
}

// WithIdempotencyStore sets the idempotency store, overriding
// idempotency.store. Default: the in-memory store.
func WithIdempotencyStore(s idempotency.Store) Option {
	return func(g *Guard) { g.idemStore = s }
}

// WithScheme sets the signature scheme, overriding scheme and keys.
func WithScheme(s signature.Scheme) Option {
	return func(g *Guard) { g.scheme = s }
}

// WithLogger sets the structured logger. Default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(g *Guard) { g.logger = l }
}

// WithStreamUnknownLength makes the dedupe step pass responses without a
// Content-Length through unrecorded, as it does text/event-stream (see
// idempotency.Options.StreamUnknownLength). For adapters in front of a
// proxy, such as the Traefik plugin.
func WithStreamUnknownLength() Option {
	return func(g *Guard) { g.streamUnknownLength = true }
}

// WithRequestScheme sets how the Middleware learns the scheme the client
// used ("http" or "https"), which the jwt binding (htu) and RFC 9421's
// @scheme and @target-uri cover. f returning "" keeps the default: "https"
// when the request arrived over TLS. Set it behind a TLS-terminating proxy,
// trusting X-Forwarded-Proto only from that proxy.
func WithRequestScheme(f func(r *http.Request) string) Option {
	return func(g *Guard) { g.requestScheme = f }
}

// WithScope makes what the Guard stores a scope of its own, named name: a
// nonce, an idempotency key or a key entry's share in a shared store is
// not the same as one of the same key id under another Guard. The binary
// gives each named route its scope. Default "": no scope of its own, the
// scope shared with every other Guard (and the Caddy and Traefik shapes)
// without one. Renaming a scope empties it.
func WithScope(name string) Option {
	return func(g *Guard) {
		g.scope = ""
		if name != "" {
			// Key ids are printable, so no unscoped principal starts
			// with \x01, and the name ends at its \x00.
			g.scope = "\x01" + name + "\x00"
		}
	}
}

// WithErrorHandler replaces how rejections are written. Default WriteProblem.
func WithErrorHandler(h func(w http.ResponseWriter, r *http.Request, err error)) Option {
	return func(g *Guard) { g.errorHandler = h }
}

// New builds a Guard from cfg, filling defaults and validating it first.
// Stores other than the in-memory exact nonce store are built by package
// stores and passed in with WithNonceStore.
func New(cfg Config, opts ...Option) (*Guard, error) {
	cfg = cfg.WithDefaults()
	g := &Guard{cfg: cfg, now: time.Now, logger: slog.Default(), errorHandler: func(w http.ResponseWriter, _ *http.Request, err error) { WriteProblem(w, err) }}
	for _, o := range opts {
		o(g)
	}
	if g.scheme == nil {
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		s, err := newScheme(cfg, g.now)
		if err != nil {
			return nil, err
		}
		g.scheme = s
	}
	if g.nonces == nil {
		if cfg.Nonce.Store != StoreMemory || cfg.Nonce.Mode != ModeExact {
			return nil, fieldErr("nonce", "store %q in mode %q is built by package stores; pass it with WithNonceStore", cfg.Nonce.Store, cfg.Nonce.Mode)
		}
		g.nonces = nonce.NewMemory(append(cfg.NonceMemoryOptions(), nonce.WithClock(g.now))...)
	}
	rawNonces := g.nonces
	if g.observer != nil {
		g.nonces = observedNonces{s: g.nonces, o: g.observer}
		g.quotas, _ = g.observer.(QuotaObserver)
	}
	g.keyIDs = map[string]bool{}
	for _, k := range cfg.Keys {
		g.keyIDs[k.ID] = true
	}
	if cfg.Scheme == "jwt" && cfg.JWT.JWKSURL != "" {
		// Not a key id (those are printable): the set never shares a
		// configured key's account.
		g.jwksOwner = "\x00jwks"
	}
	if *cfg.Idempotency.Enabled {
		if g.idemStore == nil {
			if cfg.Idempotency.Store != StoreMemory {
				return nil, fieldErr("idempotency.store", "store %q is built by package stores; pass it with WithIdempotencyStore", cfg.Idempotency.Store)
			}
			g.idemStore = idempotency.NewMemory(append(cfg.IdempotencyMemoryOptions(), idempotency.WithMemoryClock(g.now))...)
		}
		id := cfg.Idempotency
		store := g.idemStore
		if nc, ok := store.(idempotency.NonceClaimer); ok && nc.NonceStore() == rawNonces {
			g.joint = nc
		}
		var onEvent func(string)
		if g.observer != nil {
			store = observedIdempotency{s: store, o: g.observer}
			onEvent = g.observer.ObserveIdempotency
			if g.joint != nil {
				g.joint = observedJoint{nc: g.joint, o: g.observer}
			}
		}
		g.idem = idempotency.NewDeduper(store, idempotency.Options{
			OnEvent: onEvent,
			Methods: id.Methods, Required: *id.Required, TTL: id.TTL.D(), Lease: id.Lease.D(),
			MaxResponseBytes: id.MaxResponseBytes, StoreServerErrors: id.StoreServerErrors,
			FingerprintHeaders: id.FingerprintHeaders, FailOpen: cfg.FailMode == FailOpen, Logger: g.logger,
			DeriveKey: id.DeriveKey == "fingerprint", DeriveWindow: id.DeriveWindow.D(),
			StreamUnknownLength: g.streamUnknownLength,
		})
		g.covers = map[string]bool{}
		for _, m := range standardMethods {
			g.covers[m] = g.idem.Covers(m)
		}
	}
	g.window = timestamp.New(cfg.Timestamp.Tolerance.D(), cfg.Timestamp.FutureSkew.D())
	g.maxBody = cfg.MaxBodyBytes
	g.failOpen = cfg.FailMode == FailOpen
	return g, nil
}

// Config returns the configuration in force, defaults filled in.
func (g *Guard) Config() Config { return g.cfg }

// Window returns the timestamp window in force.
func (g *Guard) Window() timestamp.Window { return g.window }

// Idempotency returns the dedupe step, or nil when idempotency is disabled.
func (g *Guard) Idempotency() *idempotency.Deduper { return g.idem }

// FailOpenPasses counts requests let through because a store failed under
// fail_mode open.
func (g *Guard) FailOpenPasses() uint64 { return g.failOpenPasses.Load() }

// Verify runs signature, timestamp window and nonce on r. On success the
// replay key is recorded and the verified identity returned. The store is
// touched only after the signature verified and the timestamp is in the
// window.
func (g *Guard) Verify(ctx context.Context, r *signature.Request) (signature.Verified, error) {
	if err := r.Check(); err != nil {
		return signature.Verified{}, err
	}
	return g.verify(ctx, r, RequestTraceFrom(ctx))
}

// verify is Verify without Request.Check, for the Middleware: net/http's
// server has already refused a request line or header with a control byte
// or a method that is not a token, so the check would only scan the
// headers a second time. tr, when not nil, learns the identity as soon as
// the signature verified.
func (g *Guard) verify(ctx context.Context, r *signature.Request, tr RequestTrace) (signature.Verified, error) {
	var v signature.Verified
	var e nonce.Entry
	hasNonce, err := check(ctx, g, r, tr, &v, &e)
	if err != nil {
		return signature.Verified{}, err
	}
	if hasNonce {
		if err := addNonce(ctx, g, &v, &e); err != nil {
			return signature.Verified{}, err
		}
	}
	return v, nil
}

// The Guard's per-request steps below are functions rather than methods,
// small, with their rare paths (refusals, store failures) in functions of
// their own, and call the exported methods of other packages as method
// expressions (timestamp.Window.Check(w, …)): under the Yaegi interpreter
// (the Traefik plugin loads this package) a method call of an interpreted
// type builds a reflect.MakeFunc wrapper on each call, and every call
// allocates each value its callee's body could hold, whichever branch
// runs.

// check verifies the signature and the timestamp window, sets *v to what
// the signature established and fills e with the nonce entry the
// request's replay key asks for, still to be added; hasNonce is false when
// it has none. On an error *v is undefined.
func check(ctx context.Context, g *Guard, r *signature.Request, tr RequestTrace, v *signature.Verified, e *nonce.Entry) (hasNonce bool, err error) {
	*v, err = g.scheme.Verify(ctx, r)
	if err != nil {
		return false, err
	}
	if tr != nil {
		tr.Verified(*v)
	}
	now := g.now()
	if !v.Timestamp.IsZero() {
		if err := timestamp.Window.Check(g.window, v.Timestamp, now); err != nil {
			return false, err
		}
	}
	if v.ReplayKey == "" {
		return false, nil
	}
	*e = nonce.Entry{Scope: g.scope + signature.Verified.Scope(*v), Key: v.ReplayKey, Timestamp: v.Timestamp, Owner: quotaOwner(g, v.KeyID)}
	if v.Timestamp.IsZero() {
		e.Timestamp = now
		e.Expires = now.Add(timestamp.Window.Span(g.window))
	} else {
		e.Expires = timestamp.Window.Expiry(g.window, v.Timestamp)
	}
	return true, nil
}

// addNonce adds e, the nonce of the request v verified: nil when the
// request may go on.
func addNonce(ctx context.Context, g *Guard, v *signature.Verified, e *nonce.Entry) error {
	err := g.nonces.Add(ctx, *e)
	if err == nil {
		return nil
	}
	return nonceOutcome(ctx, g, v, err)
}

// nonceOutcome answers err, what adding the nonce of the request v
// verified returned: nil when the request may go on — the nonce added, or
// its store failed under fail_mode open.
func nonceOutcome(ctx context.Context, g *Guard, v *signature.Verified, err error) error {
	if err == nil || errors.Is(err, nonce.ErrReplayed) {
		return err
	}
	if errors.Is(err, nonce.ErrQuotaExceeded) {
		// An answer about this key, not a store failure: never
		// passed under fail_mode open.
		if g.quotas != nil {
			g.quotas.ObserveQuotaExceeded("nonce")
		}
		return err
	}
	if ctx.Err() != nil {
		// The caller went away; never pass a request on that.
		return ctx.Err()
	}
	if g.failOpen {
		g.failOpenPasses.Add(1)
		if g.observer != nil {
			g.observer.ObserveFailOpen("nonce")
		}
		g.logger.LogAttrs(ctx, slog.LevelWarn, "nonce store failed; passing under fail_mode open",
			slog.String("key_id", v.KeyID), slog.String("error", err.Error()))
		return nil
	}
	g.logger.LogAttrs(ctx, slog.LevelError, "nonce store failed", slog.String("key_id", v.KeyID), slog.String("error", err.Error()))
	return fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
}

// nonceStep fills n with the nonce e of the request v verified, for the
// dedupe step, which adds it in the claim's write when the stores allow.
// The closures hold v and e by pointer: they are on the heap already, v in
// the context of the request passed on.
func nonceStep(g *Guard, n *idempotency.NonceStep, v *signature.Verified, e *nonce.Entry) {
	*n = idempotency.NonceStep{
		Entry:   *e,
		Claimer: g.joint,
		Add:     func(ctx context.Context) error { return addNonce(ctx, g, v, e) },
		Outcome: func(ctx context.Context, err error) error { return nonceOutcome(ctx, g, v, err) },
	}
}

// quotaOwner returns the key entry a request verified by keyID is charged
// to in bounded stores: the key id itself, or for a key of the jwt.jwks_url
// set, that set as one entry.
func quotaOwner(g *Guard, keyID string) string {
	if g.jwksOwner == "" || g.keyIDs[keyID] {
		return g.scope + keyID
	}
	return g.scope + g.jwksOwner
}

type verifiedKey struct{}

// VerifiedFrom returns what the Guard established about the request whose
// context is ctx.
func VerifiedFrom(ctx context.Context) (signature.Verified, bool) {
	v, ok := ctx.Value(verifiedKey{}).(*signature.Verified)
	if !ok {
		return signature.Verified{}, false
	}
	return *v, true
}

// Middleware returns the pipeline in front of next. The request next sees
// is a copy carrying the full body and, in its context, the Verified
// identity; the original request is not modified.
func (g *Guard) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serve(g, next, w, r) })
}

// serve is the Middleware's handler; a request the dedupe step covers
// goes on in serveCovered.
func serve(g *Guard, next http.Handler, w http.ResponseWriter, r *http.Request) {
	var start time.Time
	if g.observer != nil {
		start = time.Now()
	}
	ctx := r.Context()
	tr, _ := ctx.Value(traceKey{}).(RequestTrace)
	body, err := readBody(g, r)
	if err != nil {
		g.reject(w, r, err, start, tr)
		return
	}
	if g.idem != nil {
		// Whether the dedupe step covers the method: kept for a standard
		// method, asked of the step for another.
		covered, ok := g.covers[r.Method]
		if !ok {
			covered = g.idem.Covers(r.Method)
		}
		if covered {
			serveCovered(g, next, w, r, body, start, tr)
			return
		}
	}
	// One allocation for what the request keeps: the verified identity
	// lives on in the context of the request passed on.
	p := &inFlight{}
	// verifyHTTP and addNonce, spelled out on this path.
	p.sr = *signature.FromHTTP(r, body)
	if g.requestScheme != nil {
		setScheme(g, r, &p.sr)
	}
	hasNonce, err := check(ctx, g, &p.sr, tr, &p.v, &p.e)
	if err == nil && hasNonce {
		if err = g.nonces.Add(ctx, p.e); err != nil {
			err = nonceOutcome(ctx, g, &p.v, err)
		}
	}
	if err != nil {
		g.reject(w, r, err, start, tr)
		return
	}
	if g.observer != nil {
		g.observeAccepted(start)
	}
	next.ServeHTTP(w, withBody(r, body, &p.v))
}

// standardMethods are the methods whose coverage the Guard keeps.
var standardMethods = [...]string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace}

// verifyHTTP fills p for r and its body, and checks it (see check).
func verifyHTTP(g *Guard, r *http.Request, body []byte, tr RequestTrace, p *inFlight) (hasNonce bool, err error) {
	p.sr = *signature.FromHTTP(r, body)
	if g.requestScheme != nil {
		setScheme(g, r, &p.sr)
	}
	return check(r.Context(), g, &p.sr, tr, &p.v, &p.e)
}

// setScheme sets sr's scheme to what WithRequestScheme's function says of
// r, unless it says "".
func setScheme(g *Guard, r *http.Request, sr *signature.Request) {
	if s := g.requestScheme(r); s != "" {
		sr.Scheme = s
	}
}

// serveCovered is serve for a request the dedupe step covers, with body
// read: the nonce is handed to the step, which adds it in the claim's
// write when the stores allow.
func serveCovered(g *Guard, next http.Handler, w http.ResponseWriter, r *http.Request, body []byte, start time.Time, tr RequestTrace) {
	// One allocation, larger than inFlight: the step that hands the
	// nonce over and the Observer's view of the handler come with it.
	c := &coveredInFlight{}
	p := &c.inFlight
	hasNonce, err := verifyHTTP(g, r, body, tr, p)
	if err != nil {
		g.reject(w, r, err, start, tr)
		return
	}
	v := &p.v
	r2 := withBody(r, body, v)
	idemReq := idempotency.Request{Principal: g.scope + signature.Verified.Scope(*v), KeyID: quotaOwner(g, v.KeyID), Key: v.IdempotencyKey, Target: p.sr.Target, Body: body, Optional: v.IdempotencyOptional}
	if hasNonce && g.joint == nil {
		// Without a store adding it in the claim's write, the step would
		// add the nonce alone before anything else: it is added here.
		if err := addNonce(r.Context(), g, v, &p.e); err != nil {
			if tr != nil {
				tr.Idempotency(idempotency.OutcomeNone)
			}
			g.reject(w, r, err, start, tr)
			return
		}
	} else if hasNonce {
		nonceStep(g, &c.ns, v, &p.e)
		idemReq.Nonce = &c.ns
	}
	h := next
	var on *observedNext
	if g.observer != nil {
		c.on = observedNext{g: g, start: start, next: next}
		on = &c.on
		h = on
	}
	o, err := (*idempotency.Deduper).ServeOutcome(g.idem, w, r2, idemReq, h)
	if tr != nil {
		tr.Idempotency(o)
	}
	if err != nil {
		g.reject(w, r, err, start, tr)
		return
	}
	if on != nil && !on.called {
		g.observer.ObserveRequest("idempotent_replay", time.Since(start))
	}
}

// inFlight is what the Middleware keeps of one request, in one allocation:
// the request as signed, what its signature established and its nonce
// entry.
type inFlight struct {
	sr signature.Request
	v  signature.Verified
	e  nonce.Entry
}

// coveredInFlight is inFlight for a request the dedupe step covers, with
// the step that hands its nonce over and the Observer's view of its
// handler.
type coveredInFlight struct {
	inFlight
	ns idempotency.NonceStep
	on observedNext
}

// observedNext reports a request as accepted when the dedupe step hands it
// to the upstream.
type observedNext struct {
	g      *Guard
	start  time.Time
	next   http.Handler
	called bool
}

func (o *observedNext) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.called = true
	o.g.observeAccepted(o.start)
	o.next.ServeHTTP(w, r)
}

func (g *Guard) observeAccepted(start time.Time) {
	if g.observer != nil {
		g.observer.ObserveRequest("", time.Since(start))
	}
}

// reject answers err's problem, reporting it to the Observer and to tr
// when set.
func (g *Guard) reject(w http.ResponseWriter, r *http.Request, err error, start time.Time, tr RequestTrace) {
	if g.quotas != nil && errors.Is(err, idempotency.ErrQuotaExceeded) {
		g.quotas.ObserveQuotaExceeded("idempotency")
	}
	if g.observer != nil || tr != nil {
		code := "client_closed"
		if r.Context().Err() == nil || !errors.Is(err, r.Context().Err()) {
			code = ProblemFor(err).Code
		}
		if g.observer != nil {
			g.observer.ObserveRequest(code, time.Since(start))
		}
		if tr != nil {
			tr.Rejected(code)
		}
	}
	// Answer even when the request's context is cancelled: a client that
	// half-closed its connection still reads the reply, and without one
	// net/http would send an implicit 200 for a request that never ran.
	if errors.Is(err, ErrBodyTooLarge) {
		// The rest of an oversized body is not worth draining.
		w.Header().Set("Connection", "close")
	}
	g.errorHandler(w, r, err)
}

// withBody returns a shallow copy of r whose body replays body and whose
// context carries v. The copy holds no header that could pose as the
// gateway's (IsGatewayHeader) and no trailers: nothing signs them.
func withBody(r *http.Request, body []byte, v *signature.Verified) *http.Request {
	r2 := r.WithContext(context.WithValue(r.Context(), verifiedKey{}, v))
	r2.Trailer = nil
	if hasGatewayHeader(r.Header) {
		r2.Header = r.Header.Clone()
		StripGatewayHeaders(r2.Header)
	}
	if r.Body != nil && r.Body != http.NoBody {
		rb := &replayBody{}
		rb.Reset(body)
		r2.Body = rb
		r2.ContentLength = int64(len(body))
		r2.GetBody = func() (io.ReadCloser, error) {
			b := &replayBody{}
			b.Reset(body)
			return b, nil
		}
	}
	return r2
}

type replayBody struct{ bytes.Reader }

// Read is spelled out: the Yaegi interpreter does not promote methods of
// an embedded standard-library type into interface satisfaction.
func (b *replayBody) Read(p []byte) (int, error) { return b.Reader.Read(p) }

func (*replayBody) Close() error { return nil }

// eagerBodyBytes is the largest body buffer allocated at its declared
// Content-Length before any of it arrives.
const eagerBodyBytes = 64 << 10

// readBody reads the whole body, up to the limit. An empty body, the
// common case, is answered at once; readAll reads the others.
func readBody(g *Guard, r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength == 0 {
		return []byte{}, nil
	}
	return readAll(g, r)
}

// readAll is readBody for a body that may hold bytes.
func readAll(g *Guard, r *http.Request) ([]byte, error) {
	if r.ContentLength > g.maxBody {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrBodyTooLarge, r.ContentLength, g.maxBody)
	}
	if r.ContentLength >= 0 {
		// Up to eagerBodyBytes the buffer is the declared size; past it,
		// it grows (doubling) as bytes arrive, so a client declaring a
		// large body and sending it slowly holds memory in proportion to
		// what it sent, not to what it declared.
		n := r.ContentLength
		size := n
		if size > eagerBodyBytes {
			size = eagerBodyBytes
		}
		buf := make([]byte, size)
		read := 0
		for {
			m, err := io.ReadFull(r.Body, buf[read:])
			read += m
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrBodyUnreadable, err)
			}
			if int64(read) == n {
				return buf, nil
			}
			next := 2 * int64(len(buf))
			if next > n {
				next = n
			}
			grown := make([]byte, next)
			copy(grown, buf)
			buf = grown
		}
	}
	// Unknown length (chunked): read up to one byte past the limit.
	buf := make([]byte, 0, 4096)
	lr := io.LimitReader(r.Body, g.maxBody+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBodyUnreadable, err)
		}
	}
	if int64(len(buf)) > g.maxBody {
		return nil, fmt.Errorf("%w: over the %d byte limit", ErrBodyTooLarge, g.maxBody)
	}
	return buf, nil
}
