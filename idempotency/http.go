package idempotency

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replayguard/replayguard/internal/hop"
)

// Defaults of Deduper.
const (
	DefaultTTL              = 24 * time.Hour
	DefaultLease            = 30 * time.Second
	DefaultMaxResponseBytes = 1 << 20
	DefaultDeriveWindow     = 5 * time.Minute
)

// derivedPrefix starts every derived key. A client key is printable ASCII,
// so it can never begin with this byte: the namespaces cannot collide.
const derivedPrefix = "\x01fp:"

// DerivedKey is the key derived from a request fingerprint.
func DerivedKey(fp Fingerprint) string {
	return derivedPrefix + hex.EncodeToString(fp[:])
}

// Options configures a Deduper. Zero fields take their defaults.
type Options struct {
	// Methods covered. Default POST and PATCH.
	Methods []string
	// Required makes a covered request without a key a 400. The zero value
	// is false; replayguard.Config defaults it to true.
	Required bool
	// TTL of a completed record. Default 24h.
	TTL time.Duration
	// Lease of an in-progress record, renewed while the handler runs.
	// Default 30s.
	Lease time.Duration
	// MaxResponseBytes bounds a stored body; a larger response passes
	// through and the record is released. Default 1 MiB.
	MaxResponseBytes int64
	// StoreServerErrors stores 5xx responses too (Stripe's behaviour);
	// default false releases them so the client can retry.
	StoreServerErrors bool
	// FingerprintHeaders are request headers that take part in the
	// fingerprint besides method, request-target and body.
	FingerprintHeaders []string
	// DeriveKey gives a covered request without a key one derived from
	// its principal and fingerprint, so an identical request inside
	// DeriveWindow runs once (content-based deduplication). A client key
	// always wins; derived keys live in their own namespace.
	DeriveKey bool
	// DeriveWindow is how long a derived key's record lives. Default 5m.
	DeriveWindow time.Duration
	// FailOpen lets a request run without a record when the store fails
	// (default: 503).
	FailOpen bool
	// StreamUnknownLength treats a response without a Content-Length
	// header (chunked, streamed) like text/event-stream: it passes through
	// unrecorded and the key is released. Default false records such a
	// response up to MaxResponseBytes. Set it where the handler in front
	// of which the step runs is a proxy that keeps the upstream's framing,
	// so long-lived streams are never buffered for storage.
	StreamUnknownLength bool
	// Logger receives warnings. Default slog.Default().
	Logger *slog.Logger
	// OnEvent, when set, is called for every event the Stats count:
	// "executed", "replayed", "in_progress", "reused", "released",
	// "store_error", "fail_open".
	OnEvent func(event string)
}

// Deduper is the HTTP dedupe step. It is safe for concurrent use.
type Deduper struct {
	store Store
	// owners is store when it keeps shares (OwnerClaimer), else nil.
	owners  OwnerClaimer
	opts    Options
	methods map[string]bool
	stats   Stats
}

// Stats counts what Deduper did.
type Stats struct {
	Executed, Replayed, InProgress, Reused, Released, StoreErrors, FailOpenPasses atomic.Uint64
}

// NewDeduper returns the dedupe step over store.
func NewDeduper(store Store, opts Options) *Deduper {
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Lease <= 0 {
		opts.Lease = DefaultLease
	}
	if opts.MaxResponseBytes <= 0 {
		opts.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if opts.Methods == nil {
		opts.Methods = []string{http.MethodPost, http.MethodPatch}
	}
	if opts.DeriveWindow <= 0 {
		opts.DeriveWindow = DefaultDeriveWindow
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	h := &Deduper{store: store, opts: opts, methods: map[string]bool{}}
	h.owners, _ = store.(OwnerClaimer)
	for _, m := range opts.Methods {
		h.methods[strings.ToUpper(m)] = true
	}
	return h
}

// event counts c and reports name to OnEvent.
func event(h *Deduper, c *atomic.Uint64, name string) {
	c.Add(1)
	if h.opts.OnEvent != nil {
		h.opts.OnEvent(name)
	}
}

// Stats returns the handler's counters.
func (h *Deduper) Stats() *Stats { return &h.stats }

// Covers reports whether method is deduplicated.
// Methods compare in any letter case: a client that sends "post" where
// POST is covered is covered too, since methods are signed as sent and an
// upstream may treat the spellings alike.
func (h *Deduper) Covers(method string) bool { return covers(h.methods, method) }

// covers reports whether methods, upper-cased, hold method in any letter
// case. A method is looked up as it is first: a name holding a lower-case
// letter is never among the upper-cased ones. Only a name that
// strings.ToUpper changes is upper-cased by upperASCII and looked up
// again, so that an upper-case method, covered or not, costs no loop of
// our own: under the Yaegi interpreter (the Traefik plugin) a loop over
// bytes costs about a microsecond each.
func covers(methods map[string]bool, method string) bool {
	if methods[method] {
		return true
	}
	return strings.ToUpper(method) != method && methods[upperASCII(method)]
}

// upperASCII upper-cases the ASCII letters of s, allocating only when s
// has a lower-case letter.
func upperASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'a' && c <= 'z' {
			return strings.ToUpper(s)
		}
	}
	return s
}

// Request is what the dedupe step needs to know of a verified request.
type Request struct {
	// Principal scopes the key: the key id, and the subject within it
	// (signature.Verified.Scope).
	Principal string
	// KeyID is the configured key entry that verified the request: a
	// store bounding each key's share (OwnerClaimer) charges the record to
	// it. Empty charges nobody.
	KeyID string
	// Key is the idempotency key; empty to read the Idempotency-Key header.
	Key string
	// Target is the request-target as signed.
	Target string
	// Body is the complete request body.
	Body []byte
	// Optional lets a request without a key pass without a record even
	// when Options.Required is set.
	Optional bool
	// Nonce, when set, is the request's nonce, still to be added: Serve
	// adds it first (see NonceStep), in the claim's write when
	// Nonce.Claimer is set.
	Nonce *NonceStep
}

// Outcome is what the dedupe step did with one request.
type Outcome uint8

// The outcomes of Deduper.ServeOutcome.
const (
	// OutcomeNone: no record was involved — the method is not covered,
	// the request carried no key where none is required, the store failed
	// under FailOpen, or the request was refused before a claim (key
	// missing, malformed or reused, quota, store unavailable).
	OutcomeNone Outcome = iota
	// OutcomeExecuted: the request claimed its key and ran.
	OutcomeExecuted
	// OutcomeReplayed: the stored response of an earlier run was
	// returned; the handler did not run.
	OutcomeReplayed
	// OutcomeInProgress: an earlier request with the key still runs
	// (ErrInProgress).
	OutcomeInProgress
)

// String returns the outcome's name: "none", "executed", "replayed" or
// "in_progress".
func (o Outcome) String() string {
	switch o {
	case OutcomeExecuted:
		return "executed"
	case OutcomeReplayed:
		return "replayed"
	case OutcomeInProgress:
		return "in_progress"
	}
	return "none"
}

// Serve runs next at most once per (principal, key): the first request
// runs and its response is stored, a retry gets the stored response. Errors
// (key missing or malformed, reuse, in progress, store unavailable) are
// returned unwritten for the caller to render; nil means a response was
// written.
func (h *Deduper) Serve(w http.ResponseWriter, r *http.Request, req Request, next http.Handler) error {
	_, err := h.ServeOutcome(w, r, req, next)
	return err
}

// ServeOutcome is Serve, also reporting what it did with the request (for
// an access log).
//
// What it runs on every request is functions rather than methods, few,
// with the rarer paths in functions of their own: under the Yaegi
// interpreter (the Traefik plugin loads this package) a method call of an
// interpreted type builds a reflect.MakeFunc wrapper each time, a defer
// costs as much, and every call allocates each value its callee's body
// could hold, whichever branch runs. (The Guard calls ServeOutcome as a
// method expression, which Yaegi calls as it does a function.)
func (h *Deduper) ServeOutcome(w http.ResponseWriter, r *http.Request, req Request, next http.Handler) (Outcome, error) {
	if !covers(h.methods, r.Method) {
		return passUnrecorded(r.Context(), w, r, &req, next)
	}
	fp := RequestFingerprint(r.Method, req.Target, r.Header, h.opts.FingerprintHeaders, req.Body)
	key, ttl := req.Key, h.opts.TTL
	if key == "" {
		var err error
		key, err = ParseKey(r.Header.Values(HeaderName))
		if err != nil {
			if !errors.Is(err, ErrKeyMissing) || !h.opts.DeriveKey {
				return keyless(h, w, r, &req, next, err)
			}
			// Two statements: under the Yaegi interpreter (the Traefik
			// plugin) an assignment of several values, one of them a
			// call, assigns the call's alone.
			key = DerivedKey(fp)
			ttl = h.opts.DeriveWindow
		}
	}
	scoped := ScopedKey(req.Principal, key)
	ctx := r.Context()
	var c Claim
	var err error
	switch {
	case req.Nonce != nil:
		var passed error
		c, err, passed = claimWithNonce(ctx, h, &req, scoped, fp)
		if passed != nil {
			return OutcomeNone, passed
		}
	case h.owners != nil && req.KeyID != "":
		// claim, spelled out for a request without a pending nonce.
		c, err = h.owners.ClaimFor(ctx, req.KeyID, scoped, fp, h.opts.Lease)
	default:
		c, err = h.store.Claim(ctx, scoped, fp, h.opts.Lease)
	}
	if err != nil {
		return claimFailed(h, w, r, &req, next, err)
	}
	if !c.Acquired {
		return h.answerExisting(w, c.Existing, fp)
	}
	execute(h, w, r, scoped, c.Token, ttl, next)
	return OutcomeExecuted, nil
}

// passUnrecorded adds req's pending nonce and runs next without a record.
func passUnrecorded(ctx context.Context, w http.ResponseWriter, r *http.Request, req *Request, next http.Handler) (Outcome, error) {
	if err := addNonce(ctx, req); err != nil {
		return OutcomeNone, err
	}
	next.ServeHTTP(w, r)
	return OutcomeNone, nil
}

// keyless answers a covered request whose key did not parse (err) and is
// not derived: missing where none is required, it runs without a record;
// else err is the answer, once the nonce is added.
func keyless(h *Deduper, w http.ResponseWriter, r *http.Request, req *Request, next http.Handler, err error) (Outcome, error) {
	ctx := r.Context()
	if errors.Is(err, ErrKeyMissing) && (!h.opts.Required || req.Optional) {
		return passUnrecorded(ctx, w, r, req, next)
	}
	if nerr := addNonce(ctx, req); nerr != nil {
		return OutcomeNone, nerr
	}
	return OutcomeNone, err
}

// claimFailed answers a claim that failed with err.
func claimFailed(h *Deduper, w http.ResponseWriter, r *http.Request, req *Request, next http.Handler, err error) (Outcome, error) {
	ctx := r.Context()
	if ctx.Err() != nil {
		// The client went away: not a store failure, and never a reason
		// to run the operation without its record.
		return OutcomeNone, ctx.Err()
	}
	if errors.Is(err, ErrQuotaExceeded) {
		// An answer about this key, not a store failure: never a reason
		// to run without a record, whatever the fail mode.
		return OutcomeNone, err
	}
	event(h, &h.stats.StoreErrors, "store_error")
	if h.opts.FailOpen {
		event(h, &h.stats.FailOpenPasses, "fail_open")
		h.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "idempotency store failed; running without a record under fail_mode open",
			slog.String("principal", req.Principal), slog.String("error", err.Error()))
		next.ServeHTTP(w, r)
		return OutcomeNone, nil
	}
	return OutcomeNone, fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// claimWithNonce adds req's pending nonce, in the claim's write when it
// can, and claims key. stop is the nonce's refusal, to return as it is; a
// nonce passed without being added (a failed store under fail-open) leaves
// err the store failure, so that the claim it did not make is handled as
// one that failed.
func claimWithNonce(ctx context.Context, h *Deduper, req *Request, key string, fp Fingerprint) (c Claim, err, stop error) {
	n := req.Nonce
	if n == nil || n.Claimer == nil {
		if err := addNonce(ctx, req); err != nil {
			return Claim{}, nil, err
		}
		c, err = claim(ctx, h, req.KeyID, key, fp)
		return c, err, nil
	}
	return claimJointly(ctx, h, req, key, fp)
}

// claimJointly is claimWithNonce for a nonce its Claimer adds.
func claimJointly(ctx context.Context, h *Deduper, req *Request, key string, fp Fingerprint) (c Claim, err, stop error) {
	n := req.Nonce
	req.Nonce = nil
	c, nonceErr, err := n.Claimer.ClaimWithNonce(ctx, n.Entry, req.KeyID, key, fp, h.opts.Lease)
	if nonceErr != nil {
		if stop := n.Outcome(ctx, nonceErr); stop != nil {
			return Claim{}, nil, stop
		}
		return Claim{}, nonceErr, nil
	}
	return c, err, nil
}

// claim claims key for owner when the store keeps shares.
func claim(ctx context.Context, h *Deduper, owner, key string, fp Fingerprint) (Claim, error) {
	if h.owners != nil && owner != "" {
		return h.owners.ClaimFor(ctx, owner, key, fp, h.opts.Lease)
	}
	return h.store.Claim(ctx, key, fp, h.opts.Lease)
}

func (h *Deduper) answerExisting(w http.ResponseWriter, rec *Record, fp Fingerprint) (Outcome, error) {
	if rec == nil {
		return OutcomeNone, fmt.Errorf("%w: claim returned no record", ErrUnavailable)
	}
	if rec.Fingerprint != fp {
		event(h, &h.stats.Reused, "reused")
		return OutcomeNone, ErrKeyReused
	}
	if rec.State != StateCompleted || rec.Response == nil {
		event(h, &h.stats.InProgress, "in_progress")
		return OutcomeInProgress, ErrInProgress
	}
	event(h, &h.stats.Replayed, "replayed")
	WriteResponse(w, rec.Response)
	return OutcomeReplayed, nil
}

// WriteResponse replays a stored response, marked Idempotent-Replayed.
func WriteResponse(w http.ResponseWriter, resp *Response) {
	dst := w.Header()
	for k, vs := range resp.Header {
		dst[k] = append([]string(nil), vs...)
	}
	dst.Set(ReplayedHeader, "true")
	status := resp.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write(resp.Body)
}

// execute runs next while holding the lease, then stores or releases.
func execute(h *Deduper, w http.ResponseWriter, r *http.Request, key, token string, ttl time.Duration, next http.Handler) {
	h.stats.Executed.Add(1) // event, spelled out on this path
	if h.opts.OnEvent != nil {
		h.opts.OnEvent("executed")
	}
	x := &execution{h: h, rec: recorder{w: w, max: h.opts.MaxResponseBytes, unknownLengthStreams: h.opts.StreamUnknownLength},
		renewing: renewal{ctx: context.WithoutCancel(r.Context()), store: h.store, key: key, token: token, lease: h.opts.Lease, d: h}}
	rn := &x.renewing
	startRenewal(rn)
	// One deferred call, made whether next returns or panics.
	defer finish(x)
	next.ServeHTTP(&x.rec, r)
	x.completed = true
	stopRenewal(rn)
	store(x, ttl)
}

// execution is one covered request's run, in one allocation: the
// recorder and the lease's renewal (whose ctx, key and token are the
// store's) with it.
type execution struct {
	h         *Deduper
	rec       recorder
	renewing  renewal
	completed bool // next returned
}

// finish ends x: once next returned and the record is stored (or
// released), the body's last byte goes out, so that with a durable store a
// client that has the whole response has a record that survives a crash.
// If next panicked, the key is freed so that a retry can run, and the
// panic goes on to net/http.
func finish(x *execution) {
	if x.completed {
		_ = releaseHeld(&x.rec)
		return
	}
	rn := &x.renewing
	stopRenewal(rn)
	if err := x.h.store.Release(rn.ctx, rn.key, rn.token); err != nil {
		logStoreErr(x.h, rn.ctx, "release after panic", err)
	}
}

// store stores the response x recorded for ttl, or releases its key when
// the response must not be stored: the transport failed or the connection
// was hijacked (Abandon), it was larger than MaxResponseBytes, it streams,
// its status asks for a retry (408, 425, 429), or it is a server error
// and StoreServerErrors is off.
func store(x *execution, ttl time.Duration) {
	h, rec, rn := x.h, &x.rec, &x.renewing
	if rec.status == 0 {
		// The handler set headers (or nothing) and returned: net/http
		// sends them with an implicit 200.
		rec.status = http.StatusOK
		rec.header = storableHeader(rec.w.Header())
	}
	status := rec.status
	if rec.abandoned.Load() || rec.overflow || rec.streaming ||
		status == http.StatusRequestTimeout || status == http.StatusTooEarly || status == http.StatusTooManyRequests ||
		status >= 500 && !h.opts.StoreServerErrors {
		event(h, &h.stats.Released, "released")
		if err := h.store.Release(rn.ctx, rn.key, rn.token); err != nil {
			logStoreErr(h, rn.ctx, "release", err)
		}
		return
	}
	resp := &Response{Status: status, Header: rec.header, Body: rec.buf.Bytes()}
	if err := h.store.Complete(rn.ctx, rn.key, rn.token, resp, ttl); err != nil {
		logStoreErr(h, rn.ctx, "complete", err)
	}
}

// logStoreErr logs a store failure that came after the response was
// decided.
func logStoreErr(h *Deduper, ctx context.Context, op string, err error) {
	event(h, &h.stats.StoreErrors, "store_error")
	level := slog.LevelError
	if errors.Is(err, ErrLeaseLost) {
		level = slog.LevelWarn
	}
	h.opts.Logger.LogAttrs(ctx, level, "idempotency "+op+" failed; the response was still returned",
		slog.String("error", err.Error()))
}

func renewLoop(ctx context.Context, store Store, key, token string, lease time.Duration, onErr func(error)) (stop func()) {
	return startRenewal(&renewal{ctx: ctx, store: store, key: key, token: token, lease: lease, onErr: onErr}).stop
}

// renewal renews one lease every third of it until stopped: a timer chain
// rather than a goroutine selecting on a ticker, as the Yaegi interpreter
// shares one select's case list between goroutines. One allocation holds
// its state, since every covered request starts one.
type renewal struct {
	ctx        context.Context
	store      Store
	key, token string
	lease      time.Duration
	every      time.Duration
	// d, when set, logs a failed renewal; else onErr is told.
	d     *Deduper
	onErr func(error)

	mu      sync.Mutex
	stopped bool
	timer   *time.Timer
	running sync.WaitGroup
}

func startRenewal(rn *renewal) *renewal {
	rn.every = rn.lease / 3
	if rn.every < time.Millisecond {
		rn.every = time.Millisecond
	}
	rn.mu.Lock()
	rn.timer = time.AfterFunc(rn.every, rn.renew)
	rn.mu.Unlock()
	return rn
}

func (rn *renewal) renew() {
	rn.mu.Lock()
	if rn.stopped {
		rn.mu.Unlock()
		return
	}
	rn.running.Add(1)
	rn.mu.Unlock()
	defer rn.running.Done()
	if err := rn.store.Renew(rn.ctx, rn.key, rn.token, rn.lease); err != nil {
		if rn.d != nil {
			logStoreErr(rn.d, rn.ctx, "lease renewal", err)
		} else {
			rn.onErr(err)
		}
		if errors.Is(err, ErrLeaseLost) {
			return
		}
	}
	rn.mu.Lock()
	if !rn.stopped {
		rn.timer.Reset(rn.every)
	}
	rn.mu.Unlock()
}

// stop ends the renewals, waiting for one under way; calling it again
// does nothing.
func (rn *renewal) stop() { stopRenewal(rn) }

// stopRenewal is rn.stop, a function: under the Yaegi interpreter (the
// Traefik plugin) a method call builds a reflect.MakeFunc wrapper.
func stopRenewal(rn *renewal) {
	rn.mu.Lock()
	if !rn.stopped {
		rn.stopped = true
		rn.timer.Stop()
	}
	rn.mu.Unlock()
	rn.running.Wait()
}

// Abandon marks the response being written to w as one that must not be
// stored (the upstream was not reached). Reverse proxies call it from
// their error handler; w may be any wrapper whose Unwrap chain leads to
// the recorder.
func Abandon(w http.ResponseWriter) {
	for w != nil {
		if rec, ok := w.(*recorder); ok {
			rec.abandoned.Store(true)
			return
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return
		}
		w = u.Unwrap()
	}
}

// recorder passes the response through to the client while keeping a copy
// of status, headers and up to max bytes of body.
type recorder struct {
	w         http.ResponseWriter
	max       int64
	status    int
	header    http.Header
	buf       bytes.Buffer
	overflow  bool
	streaming bool
	// sent is how much of buf went on to w; the rest is held back until
	// the record is stored (release): the whole body while it is no
	// longer than holdBytes, then its last byte.
	sent      int
	abandoned atomic.Bool
	// unknownLengthStreams marks a response without Content-Length as
	// streaming.
	unknownLengthStreams bool
}

func (r *recorder) Header() http.Header { return r.w.Header() }

func (r *recorder) WriteHeader(code int) {
	if r.status != 0 {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		r.w.WriteHeader(code)
		return
	}
	r.status = code
	h := r.w.Header()
	r.header = storableHeader(h)
	if ct := h["Content-Type"]; len(ct) > 0 && strings.HasPrefix(strings.ToLower(ct[0]), "text/event-stream") {
		r.streaming = true
	}
	// 204 and 304 carry no body, hence no Content-Length: nothing streams.
	if cl := h["Content-Length"]; r.unknownLengthStreams && code != http.StatusNoContent && code != http.StatusNotModified &&
		(len(cl) == 0 || cl[0] == "") {
		r.streaming = true
	}
	r.w.WriteHeader(code)
}

// holdBytes is how much of a body the recorder holds back whole: what
// net/http's server buffers before it writes a response's first bytes
// (HTTP/1: 2 KiB before chunking; HTTP/2: 4 KiB), so that holding it sends
// nothing later than passing it on would, in one write instead of two.
const holdBytes = 2 << 10

func (r *recorder) Write(p []byte) (int, error) {
	// A body held whole, as most are, is only copied: the frame of this
	// method, which every write allocates under the Yaegi interpreter
	// (the Traefik plugin), stays small.
	if n := r.buf.Len() + len(p); n <= holdBytes && int64(n) <= r.max && r.status != 0 && !r.overflow && !r.streaming &&
		r.status != http.StatusNoContent && r.status != http.StatusNotModified {
		r.buf.Write(p)
		return len(p), nil
	}
	return write(r, p)
}

// write is Write past its fast path.
func write(r *recorder, p []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	if !r.overflow && !r.streaming {
		if int64(r.buf.Len()+len(p)) > r.max {
			// What was held goes out before the copy is given up.
			if err := releaseHeld(r); err != nil {
				return 0, err
			}
			r.overflow = true
			r.buf, r.sent = bytes.Buffer{}, 0
		} else {
			r.buf.Write(p)
		}
	}
	if r.overflow || r.streaming || r.status == http.StatusNoContent || r.status == http.StatusNotModified {
		// Not to be stored, or no body to hold: nothing to wait for.
		if err := releaseHeld(r); err != nil {
			return 0, err
		}
		return r.w.Write(p)
	}
	// The last byte written so far is held back until the record is
	// stored (release), so that a client never has the whole response
	// of an operation whose record could still be lost.
	if r.buf.Len() > holdBytes {
		if err := passOn(r); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// passOn sends what r holds back but the last byte of the body so far.
func passOn(r *recorder) error {
	n := r.buf.Len() - 1
	if n <= r.sent {
		return nil
	}
	p := r.buf.Bytes()[r.sent:n]
	r.sent = n
	_, err := r.w.Write(p)
	return err
}

// releaseHeld sends what r's Write held back, once the record is stored
// or released. Write and the functions it calls are functions rather than
// methods: under the Yaegi interpreter (the Traefik plugin) a method call
// builds a reflect.MakeFunc wrapper each time.
func releaseHeld(r *recorder) error {
	if r.sent >= r.buf.Len() {
		return nil
	}
	p := r.buf.Bytes()[r.sent:]
	r.sent = r.buf.Len()
	_, err := r.w.Write(p)
	return err
}

// Unwrap lets http.ResponseController reach the underlying writer
// (Flush, Hijack, deadlines).
func (r *recorder) Unwrap() http.ResponseWriter { return r.w }

// Flush forwards to the underlying writer when it can flush.
func (r *recorder) Flush() { _ = r.FlushError() }

// FlushError flushes the underlying writer, reporting http.ErrNotSupported
// when it cannot (http.ResponseController prefers this to Flush).
func (r *recorder) FlushError() error {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	// A flush sends what was written so far, but for the last byte.
	if !r.overflow && !r.streaming {
		if err := passOn(r); err != nil {
			return err
		}
	}
	return http.NewResponseController(r.w).Flush()
}

// Hijack hands the connection to the handler; what it then writes is not
// seen here, so the record is released rather than stored.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	r.abandoned.Store(true)
	return http.NewResponseController(r.w).Hijack()
}

// storableHeader copies h without hop-by-hop headers (including those
// Connection names), Set-Cookie, Date and Idempotent-Replayed: a clone
// (one copy whose values share one array) with those deleted, so that the
// copy runs in the standard library, where the Yaegi interpreter (the
// Traefik plugin) would run a loop over h's names.
func storableHeader(h http.Header) http.Header {
	if h == nil {
		return http.Header{}
	}
	out := h.Clone()
	if len(h["Connection"]) > 0 {
		for _, name := range hop.Named(h) {
			delete(out, name)
		}
	}
	hop.DeleteStandard(out)
	delete(out, "Set-Cookie")
	delete(out, "Date")
	delete(out, ReplayedHeader)
	return out
}
