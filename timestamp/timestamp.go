package timestamp

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Sentinel errors. Checks wrap them with %w, so errors.Is matches.
var (
	ErrMissing   = errors.New("timestamp: missing")
	ErrMalformed = errors.New("timestamp: malformed")
	ErrExpired   = errors.New("timestamp: expired")
	ErrInFuture  = errors.New("timestamp: in the future")
)

// Default bounds of the window.
const (
	DefaultTolerance  = 5 * time.Minute
	DefaultFutureSkew = 5 * time.Minute
)

// expiryMargin is added to a replay record's expiry so that a record never
// disappears while an instance whose clock runs slightly behind could still
// accept its timestamp.
const expiryMargin = 5 * time.Second

// MaxSpan is the widest window whose arithmetic can be represented:
// Tolerance + FutureSkew, with the margin a replay record keeps, must fit
// in a time.Duration (about 292 years). Windows of years are fine.
const MaxSpan = time.Duration(1<<63-1) - expiryMargin

// maxDigits bounds a unix-seconds value: 11 digits reach the year 5138.
const maxDigits = 11

// Window is the accepted range of signed timestamps relative to now.
// The zero Window accepts only timestamps equal to now; use New or set both fields.
type Window struct {
	// Tolerance is how far in the past a timestamp may lie. Default 5m.
	Tolerance time.Duration
	// FutureSkew is how far in the future a timestamp may lie. Default 5m.
	FutureSkew time.Duration
}

// New returns a Window; zero arguments take the defaults.
func New(tolerance, futureSkew time.Duration) Window {
	if tolerance == 0 {
		tolerance = DefaultTolerance
	}
	if futureSkew == 0 {
		futureSkew = DefaultFutureSkew
	}
	return Window{Tolerance: tolerance, FutureSkew: futureSkew}
}

// Check reports whether ts lies inside the window around now.
func (w Window) Check(ts, now time.Time) error {
	if ts.Before(now.Add(-w.Tolerance)) || ts.After(now.Add(w.FutureSkew)) {
		return outside(w, ts, now)
	}
	return nil
}

// outside returns why ts, outside w around now, is refused. Check's
// refusals are worded here so that Check itself stays small: the Yaegi
// interpreter (the Traefik plugin) allocates every value a function body
// could hold on each call, whichever branch runs.
func outside(w Window, ts, now time.Time) error {
	if ts.Before(now.Add(-w.Tolerance)) {
		return fmt.Errorf("%w: %s older than the %s tolerance", ErrExpired, now.Sub(ts).Truncate(time.Second), w.Tolerance)
	}
	return fmt.Errorf("%w: %s ahead, more than the %s allowed skew", ErrInFuture, ts.Sub(now).Truncate(time.Second), w.FutureSkew)
}

// Expiry is the absolute time after which a replay record for a request
// signed at ts is no longer needed: once ts has left the window no request
// carrying it can pass Check, so the record can go.
func (w Window) Expiry(ts time.Time) time.Time {
	// Two Adds: time.Time reaches far past what one Duration sum holds.
	return ts.Add(w.Tolerance).Add(expiryMargin)
}

// Span is the whole width of the window, Tolerance + FutureSkew: the longest
// a replay record can be needed, counted from now. A sum past MaxSpan
// saturates at MaxSpan rather than wrap to a negative width.
func (w Window) Span() time.Duration {
	if w.Tolerance > 0 && w.FutureSkew > 0 && w.Tolerance > MaxSpan-w.FutureSkew {
		return MaxSpan
	}
	return w.Tolerance + w.FutureSkew
}

// Validate reports a window that cannot be represented: a negative bound,
// or a span past MaxSpan.
func (w Window) Validate() error {
	switch {
	case w.Tolerance < 0:
		return errors.New("timestamp: tolerance must not be negative")
	case w.FutureSkew < 0:
		return errors.New("timestamp: future skew must not be negative")
	case w.Tolerance > MaxSpan-w.FutureSkew:
		return fmt.Errorf("timestamp: tolerance (%s) + future skew (%s) exceeds %s (about 292 years), the widest window whose time arithmetic can be represented", w.Tolerance, w.FutureSkew, MaxSpan)
	}
	return nil
}

// ParseUnix parses a unix time in whole seconds: 1 to 11 ASCII digits, no
// sign, no spaces, no fraction.
func ParseUnix(s string) (time.Time, error) {
	// Base 10 takes digits alone: no sign, no underscore, no space.
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || len(s) > maxDigits {
		return time.Time{}, unixError(s)
	}
	return time.Unix(int64(n), 0), nil
}

// unixError returns why ParseUnix refused s. Worded apart so that ParseUnix
// stays small, as Check does.
func unixError(s string) error {
	switch {
	case s == "":
		return ErrMissing
	case len(s) > maxDigits:
		return fmt.Errorf("%w: more than %d digits", ErrMalformed, maxDigits)
	}
	return fmt.Errorf("%w: not a unix time in seconds", ErrMalformed)
}
