package replayguard

import (
	"context"

	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/signature"
)

// RequestTrace receives what the Guard establishes about one request as it
// establishes it: the source of an access log line. Put one in the
// request's context with WithRequestTrace; the Guard calls it on the
// goroutine serving the request, before the Middleware or ForwardAuth
// returns. Nothing is computed for it that the pipeline does not compute
// anyway.
type RequestTrace interface {
	// Verified reports the identity a verified signature established, also
	// when the request is refused afterwards (timestamp outside the
	// window, nonce replayed, idempotency conflict). v.ReplayKey may be
	// the signature itself (stripe, slack, RFC 9421 without a nonce):
	// never log it.
	Verified(v signature.Verified)
	// Rejected reports the problem code the request is answered with, or
	// "client_closed" when the client went away first.
	Rejected(code string)
	// Idempotency reports what the dedupe step did with a request it
	// covers.
	Idempotency(o idempotency.Outcome)
}

type traceKey struct{}

// WithRequestTrace returns a copy of ctx carrying t.
func WithRequestTrace(ctx context.Context, t RequestTrace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

// RequestTraceFrom returns the RequestTrace ctx carries, or nil.
func RequestTraceFrom(ctx context.Context) RequestTrace {
	t, _ := ctx.Value(traceKey{}).(RequestTrace)
	return t
}
