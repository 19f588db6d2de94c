package idempotency

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Sentinel errors.
var (
	// ErrKeyMissing reports a covered request without a key when one is required.
	ErrKeyMissing = errors.New("idempotency: key missing")
	// ErrKeyMalformed reports a key that is not 1–255 printable ASCII characters.
	ErrKeyMalformed = errors.New("idempotency: key malformed")
	// ErrKeyReused reports the same key sent with another request fingerprint.
	ErrKeyReused = errors.New("idempotency: key reused with another request")
	// ErrInProgress reports that the first request with the key still runs.
	ErrInProgress = errors.New("idempotency: request in progress")
	// ErrLeaseLost reports that a holder's lease expired and another claim
	// (or an expiry) took the record: the holder must not complete it.
	ErrLeaseLost = errors.New("idempotency: lease lost")
	// ErrUnavailable reports that the store could not answer. Store errors
	// wrap it.
	ErrUnavailable = errors.New("idempotency: store unavailable")
	// ErrQuotaExceeded reports that the claiming owner already holds its
	// whole share of a bounded store; other owners are unaffected. Stores
	// return it as a *QuotaError.
	ErrQuotaExceeded = errors.New("idempotency: quota exceeded")
)

// QuotaError reports an owner over its share of a bounded store. It
// carries data, hence a type. Stores return it wrapped beside
// ErrQuotaExceeded (see NewQuotaError), so that errors.Is finds the
// sentinel without calling a method of QuotaError: the Yaegi interpreter
// does not let errors.Is call methods of interpreted types.
type QuotaError struct {
	// RetryAfter is how long until the owner's earliest record expires
	// and frees room for a new one.
	RetryAfter time.Duration
}

func (e *QuotaError) Error() string {
	return "this key holds its whole share of the store; retry in " +
		strconv.FormatInt(int64((e.RetryAfter+time.Second-1)/time.Second), 10) + "s"
}

// Unwrap returns ErrQuotaExceeded.
func (e *QuotaError) Unwrap() error { return ErrQuotaExceeded }

// NewQuotaError returns the error of an owner over its share: one wrapping
// both ErrQuotaExceeded and a *QuotaError carrying retryAfter.
func NewQuotaError(retryAfter time.Duration) error {
	// Passed as an error value: under the Yaegi interpreter fmt sees an
	// interpreted *QuotaError given directly as a plain struct and would
	// not format it as an error.
	var q error = &QuotaError{RetryAfter: retryAfter}
	return fmt.Errorf("%w: %w", ErrQuotaExceeded, q)
}

// State is the state of a stored record.
type State int

// States of a record. The zero State is not a state (the constants avoid
// a typed iota expression, which the Yaegi interpreter compares wrongly).
const (
	_ State = iota
	StateInProgress
	StateCompleted
)

func (s State) String() string {
	switch s {
	case StateInProgress:
		return "in_progress"
	case StateCompleted:
		return "completed"
	}
	return "unknown"
}

// Fingerprint identifies the request a key was first used with.
type Fingerprint [32]byte

// Response is a stored response.
type Response struct {
	// Status is the HTTP status (0 for results of Do).
	Status int
	// Header holds the stored headers (hop-by-hop, Set-Cookie and Date removed).
	Header http.Header
	// Body is the complete body.
	Body []byte
}

// Record is what a store holds under a key.
type Record struct {
	State       State
	Fingerprint Fingerprint
	// Response is set when State is StateCompleted. It may be shared with
	// the store: callers must not modify it.
	Response *Response
}

// Claim is the outcome of Store.Claim.
type Claim struct {
	// Acquired reports that the caller now holds the key's lease and must
	// Complete or Release it with Token.
	Acquired bool
	// Token is the fencing token of an acquired claim.
	Token string
	// Existing is the record found when the claim was not acquired.
	Existing *Record
}

// Store persists idempotency records. Keys arrive already scoped by
// principal. Every method is one atomic step.
type Store interface {
	// Claim creates an in-progress record for key with fingerprint fp,
	// leased for lease, and returns its new fencing token. When a live
	// record exists it returns it instead (Acquired false). An in-progress
	// record whose lease has expired (its holder died) no longer holds the
	// key: the claim takes it over with a new token, as it replaces a
	// completed record whose TTL has passed.
	Claim(ctx context.Context, key string, fp Fingerprint, lease time.Duration) (Claim, error)
	// Renew extends the lease of the holder of token. ErrLeaseLost when
	// token no longer holds the key.
	Renew(ctx context.Context, key, token string, lease time.Duration) error
	// Complete stores resp for ttl, if token still holds the key.
	// ErrLeaseLost otherwise; the stored record is then left untouched.
	Complete(ctx context.Context, key, token string, resp *Response, ttl time.Duration) error
	// Release removes the in-progress record, if token still holds it,
	// so that the key can be claimed again. ErrLeaseLost otherwise.
	Release(ctx context.Context, key, token string) error
}

// OwnerClaimer is implemented by stores that bound what each owner may
// hold (the memory store with a key share). The owner is the key entry
// that verified the request, never a name the signer chooses; the record
// claimed is charged to it until it expires or is released. ClaimFor is
// Claim, except that it fails with a *QuotaError when owner's share is used
// up (a key with a live record still gets that record). The Deduper calls
// it when the store implements it and Request.KeyID is set; Claim charges
// nobody.
type OwnerClaimer interface {
	ClaimFor(ctx context.Context, owner, key string, fp Fingerprint, lease time.Duration) (Claim, error)
}

// Pinger is implemented by stores that can report their health.
type Pinger interface {
	Ping(ctx context.Context) error
}

// NewToken returns a random fencing token. Tokens are random rather than
// counted so that a record deleted and claimed again never reissues a token
// a stale holder still has.
func NewToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
