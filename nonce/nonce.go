package nonce

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Sentinel errors.
var (
	// ErrReplayed reports that the replay key is already recorded.
	ErrReplayed = errors.New("nonce: replayed")
	// ErrMissing reports that a scheme requiring a nonce found none.
	ErrMissing = errors.New("nonce: missing")
	// ErrMalformed reports a nonce outside the allowed syntax.
	ErrMalformed = errors.New("nonce: malformed")
	// ErrUnavailable reports that the store could not answer (error,
	// timeout, capacity exhausted). Store errors wrap it.
	ErrUnavailable = errors.New("nonce: store unavailable")
	// ErrQuotaExceeded reports that the entry's owner already holds its
	// whole share of a bounded store; other owners are unaffected. Stores
	// return it as a *QuotaError.
	ErrQuotaExceeded = errors.New("nonce: quota exceeded")
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

// Entry is one replay key to record.
type Entry struct {
	// Scope isolates principals: the same nonce under two key ids is two
	// different entries. Usually the key id.
	Scope string
	// Key is the replay key (the nonce, a JWT jti, a signature value).
	Key string
	// Timestamp is the signed timestamp of the request. Stores that bucket
	// by time (Bloom filters) use it so that every instance, whatever its
	// clock, picks the same bucket.
	Timestamp time.Time
	// Expires is the absolute time after which the entry may be forgotten.
	Expires time.Time
	// Owner is the key entry charged for the record by stores that bound
	// each owner's share (the memory stores with a key share): the
	// configured key id that verified the request, never a name the
	// signer chooses. Empty charges nobody; the record then counts only
	// against the store's cap.
	Owner string
}

// Store records replay keys.
type Store interface {
	// Add records e. It returns an error wrapping ErrReplayed when the same
	// scoped key is already recorded and unexpired, one wrapping
	// ErrUnavailable when the store cannot answer, and one wrapping
	// ErrQuotaExceeded when the store bounds each owner's share and
	// e.Owner's is used up (a replay is still reported as ErrReplayed).
	// Add is atomic: of many concurrent Adds of one entry exactly one
	// returns nil.
	Add(ctx context.Context, e Entry) error
}

// Pinger is implemented by stores that can report their health.
type Pinger interface {
	Ping(ctx context.Context) error
}
