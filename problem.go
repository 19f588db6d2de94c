package replayguard

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/timestamp"
)

// Sentinel errors of the pipeline itself.
var (
	// ErrBodyTooLarge reports a body over max_body_bytes.
	ErrBodyTooLarge = errors.New("replayguard: body too large")
	// ErrBodyUnreadable reports a body that could not be read (the client
	// went away or stalled).
	ErrBodyUnreadable = errors.New("replayguard: body unreadable")
	// ErrStoreUnavailable reports a store that failed under fail_mode closed.
	ErrStoreUnavailable = errors.New("replayguard: store unavailable")
	// ErrUpstreamUnavailable reports an upstream that could not be reached
	// or did not answer.
	ErrUpstreamUnavailable = errors.New("replayguard: upstream unavailable")
	// ErrTargetUnforwardable reports a request-target that the request
	// passed on could not carry byte for byte as it was verified.
	ErrTargetUnforwardable = errors.New("replayguard: request-target cannot be forwarded as verified")
	// ErrRouteNotFound reports a request that no route of the binary's
	// routes matches.
	ErrRouteNotFound = errors.New("replayguard: no route matches")
	// ErrTargetAmbiguous reports a request-target whose path servers read
	// in more than one way (a dot-segment, %2F, %2E), which routes refuse
	// rather than match.
	ErrTargetAmbiguous = errors.New("replayguard: request-target ambiguous")
	// ErrForwardedUntrusted reports a forward-auth request from a peer
	// outside trusted_proxies: it may not name the request to verify.
	ErrForwardedUntrusted = errors.New("replayguard: forwarded request from an untrusted peer")
	// ErrForwardedInvalid reports a forward-auth request from a trusted
	// peer whose X-Forwarded-* headers do not describe a request.
	ErrForwardedInvalid = errors.New("replayguard: forwarded request invalid")
)

// ProblemType prefixes the RFC 9457 type URI of every problem code.
const ProblemType = "urn:replayguard:error:"

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Code   string `json:"code"`
	Detail string `json:"detail,omitempty"`
}

type problemClass struct {
	err    error
	status int
	code   string
	title  string
}

// classes is the one map from errors to statuses and problem codes. Order
// matters: the first sentinel an error matches wins.
var classes = []problemClass{
	{ErrBodyTooLarge, http.StatusRequestEntityTooLarge, "body_too_large", "Request body too large"},
	{ErrBodyUnreadable, http.StatusBadRequest, "body_unreadable", "Request body could not be read"},
	{ErrStoreUnavailable, http.StatusServiceUnavailable, "store_unavailable", "Store unavailable"},
	{ErrUpstreamUnavailable, http.StatusBadGateway, "upstream_unavailable", "Upstream unavailable"},
	{ErrForwardedUntrusted, http.StatusForbidden, "forwarded_untrusted", "Forwarded request from an untrusted peer"},
	{ErrForwardedInvalid, http.StatusBadRequest, "forwarded_invalid", "Forwarded request invalid"},
	{nonce.ErrQuotaExceeded, http.StatusTooManyRequests, "quota_exceeded", "Quota exceeded"},
	{idempotency.ErrQuotaExceeded, http.StatusTooManyRequests, "quota_exceeded", "Quota exceeded"},
	{nonce.ErrUnavailable, http.StatusServiceUnavailable, "store_unavailable", "Store unavailable"},
	{idempotency.ErrUnavailable, http.StatusServiceUnavailable, "store_unavailable", "Store unavailable"},
	{signature.ErrMethodInvalid, http.StatusBadRequest, "method_invalid", "Method invalid"},
	{signature.ErrMethodNotAllowed, http.StatusMethodNotAllowed, "method_not_allowed", "Method not allowed"},
	{ErrTargetUnforwardable, http.StatusBadRequest, "target_unforwardable", "Request-target cannot be forwarded"},
	{ErrRouteNotFound, http.StatusNotFound, "route_not_found", "No route matches"},
	{ErrTargetAmbiguous, http.StatusBadRequest, "target_ambiguous", "Request-target ambiguous"},
	{signature.ErrMissing, http.StatusUnauthorized, "signature_missing", "Signature missing"},
	{signature.ErrMalformed, http.StatusUnauthorized, "signature_malformed", "Signature malformed"},
	{signature.ErrKeyUnknown, http.StatusUnauthorized, "key_unknown", "Key unknown"},
	{signature.ErrInvalid, http.StatusUnauthorized, "signature_invalid", "Signature invalid"},
	{timestamp.ErrMissing, http.StatusUnauthorized, "timestamp_missing", "Timestamp missing"},
	{timestamp.ErrMalformed, http.StatusUnauthorized, "timestamp_malformed", "Timestamp malformed"},
	{timestamp.ErrExpired, http.StatusUnauthorized, "timestamp_expired", "Timestamp expired"},
	{timestamp.ErrInFuture, http.StatusUnauthorized, "timestamp_in_future", "Timestamp in the future"},
	{nonce.ErrMissing, http.StatusUnauthorized, "nonce_missing", "Nonce missing"},
	{nonce.ErrMalformed, http.StatusUnauthorized, "nonce_malformed", "Nonce malformed"},
	{nonce.ErrReplayed, http.StatusUnauthorized, "nonce_replayed", "Request replayed"},
	{idempotency.ErrKeyMissing, http.StatusBadRequest, "idempotency_key_missing", "Idempotency-Key missing"},
	{idempotency.ErrKeyMalformed, http.StatusBadRequest, "idempotency_key_malformed", "Idempotency-Key malformed"},
	{idempotency.ErrKeyReused, http.StatusUnprocessableEntity, "idempotency_key_reused", "Idempotency-Key reused"},
	{idempotency.ErrInProgress, http.StatusConflict, "idempotency_in_progress", "Request in progress"},
}

// ProblemFor maps an error of the pipeline to its problem details. An error
// matching no sentinel is a 500 "internal" problem whose detail hides the
// error text.
func ProblemFor(err error) Problem {
	for _, c := range classes {
		if errors.Is(err, c.err) {
			p := Problem{Type: ProblemType + c.code, Title: c.title, Status: c.status, Code: c.code, Detail: err.Error()}
			switch {
			case c.status == http.StatusBadGateway:
				// Proxy errors name the upstream's address; keep it in
				// the logs.
				p.Detail = "the upstream did not answer"
			case c.status >= 500:
				// Store errors name addresses and internals; keep them in
				// the logs.
				p.Detail = "a store did not answer; retry shortly"
			}
			return p
		}
	}
	return Problem{Type: ProblemType + "internal", Title: "Internal error", Status: http.StatusInternalServerError, Code: "internal"}
}

// WriteProblem writes err as an application/problem+json response.
func WriteProblem(w http.ResponseWriter, err error) {
	p := ProblemFor(err)
	b, _ := json.Marshal(p)
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("Cache-Control", "no-store")
	if ch := signature.WWWAuthenticate(err); ch != "" {
		h.Set("WWW-Authenticate", ch)
	}
	if p.Status == http.StatusServiceUnavailable || p.Status == http.StatusConflict {
		h.Set("Retry-After", "1")
	}
	if p.Status == http.StatusMethodNotAllowed {
		if m := signature.AllowedMethods(err); len(m) > 0 {
			h.Set("Allow", strings.Join(m, ", "))
		}
	}
	if d, ok := quotaRetryAfter(err); ok {
		h.Set("Retry-After", strconv.FormatInt(retryAfterSeconds(d), 10))
	}
	w.WriteHeader(p.Status)
	_, _ = w.Write(b)
}

// maxRetryAfter bounds the Retry-After of quota_exceeded.
const maxRetryAfter = time.Hour

// quotaRetryAfter returns the wait the quota error err carries, if it is
// one.
func quotaRetryAfter(err error) (time.Duration, bool) {
	if !errors.Is(err, nonce.ErrQuotaExceeded) && !errors.Is(err, idempotency.ErrQuotaExceeded) {
		return 0, false
	}
	if d, ok := quotaIn(err); ok {
		return d, true
	}
	// Under the Yaegi interpreter (the Traefik plugin) interpreted code
	// cannot look inside the standard library's error wrappers, nor can
	// errors.As match an interpreted type; the wait is also in the
	// message, in whole seconds, as QuotaError.Error writes it.
	msg := err.Error()
	i := strings.LastIndex(msg, "retry in ")
	if i < 0 {
		return 0, true
	}
	digits := strings.TrimSuffix(msg[i+len("retry in "):], "s")
	n, perr := strconv.ParseInt(digits, 10, 64)
	if perr != nil {
		return 0, true
	}
	return time.Duration(n) * time.Second, true
}

// quotaIn finds a *QuotaError in err's chain. It walks the chain itself:
// errors.As panics on an interpreted type under Yaegi.
func quotaIn(err error) (time.Duration, bool) {
	switch q := err.(type) { //nolint:errorlint // walks the chain itself, see above
	case nil:
		return 0, false
	case *nonce.QuotaError:
		return q.RetryAfter, true
	case *idempotency.QuotaError:
		return q.RetryAfter, true
	case interface{ Unwrap() []error }:
		for _, e := range q.Unwrap() {
			if d, ok := quotaIn(e); ok {
				return d, true
			}
		}
	case interface{ Unwrap() error }:
		return quotaIn(q.Unwrap())
	}
	return 0, false
}

// retryAfterSeconds rounds d up to whole seconds, at least 1 and at most
// maxRetryAfter.
func retryAfterSeconds(d time.Duration) int64 {
	if d > maxRetryAfter {
		d = maxRetryAfter
	}
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}
