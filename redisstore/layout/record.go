package layout

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/replayguard/replayguard/idempotency"
)

// The replies of the layout's commands and scripts, decoded the same way
// by every transport. A transport hands over a reply as Go values: strings
// for simple and bulk strings, int64 for integers, nil for a null and []any
// for an array (go-redis's and package resp's representation alike).

// NewNonceToken returns an exact-nonce value: a random non-negative 63-bit
// integer in decimal, new for every call. Redis keeps such a value as an
// integer in the key's object (no separate string allocation) and returns
// it byte for byte, which is how a call recognises its own retried write.
func NewNonceToken() string {
	return strconv.FormatInt(rand.Int64(), 10)
}

// NonceFresh decodes the reply of the exact-nonce SET … NX GET: nil (no
// previous value) or the call's own token is fresh; any other value means
// the nonce was recorded before.
func NonceFresh(reply any, token string) bool {
	if reply == nil {
		return true
	}
	s, ok := reply.(string)
	return ok && s == token
}

// UnixMilliCeil returns t in unix milliseconds, rounded up so that a key
// never expires before t.
// Milliseconds reach far past the year 2262 where unix nanoseconds end, so
// a window of centuries still yields an expiry ahead.
func UnixMilliCeil(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.Nanosecond()%int(time.Millisecond) > 0 {
		ms++
	}
	return ms
}

// Millis returns d in whole milliseconds, rounded up, at least 1: the
// lease and TTL arguments of the idempotency scripts.
func Millis(d time.Duration) int64 {
	ms := int64(d / time.Millisecond)
	if d%time.Millisecond > 0 {
		ms++
	}
	if ms < 1 {
		return 1
	}
	return ms
}

// ClaimArgs are ClaimScript's arguments after its key.
func ClaimArgs(token string, fp idempotency.Fingerprint, lease time.Duration) []any {
	return []any{token, fp[:], Millis(lease)}
}

// RenewArgs are RenewScript's arguments after its key.
func RenewArgs(token string, lease time.Duration) []any {
	return []any{token, Millis(lease)}
}

// CompleteArgs are CompleteScript's arguments after its key.
func CompleteArgs(token string, resp *idempotency.Response, ttl time.Duration) []any {
	return []any{token, strconv.Itoa(resp.Status), EncodeHeader(resp.Header), resp.Body, Millis(ttl)}
}

// ReleaseArgs are ReleaseScript's arguments after its key.
func ReleaseArgs(token string) []any {
	return []any{token}
}

// DecodeClaim decodes ClaimScript's reply: {1} when the call acquired the
// key under token, else {0, state, fingerprint, status, header, body} of
// the record that holds it. Errors wrap idempotency.ErrUnavailable.
func DecodeClaim(reply any, token string) (idempotency.Claim, error) {
	r, ok := reply.([]any)
	if !ok || len(r) == 0 {
		return idempotency.Claim{}, corrupt("claim reply %T", reply)
	}
	if acquired, _ := r[0].(int64); acquired == 1 {
		return idempotency.Claim{Acquired: true, Token: token}, nil
	}
	rec, err := decodeRecord(r[1:])
	if err != nil {
		return idempotency.Claim{}, err
	}
	return idempotency.Claim{Existing: rec}, nil
}

// DecodeTransition decodes the reply of RenewScript, CompleteScript and
// ReleaseScript: 1 is done, 0 means the token no longer holds the record
// (idempotency.ErrLeaseLost).
func DecodeTransition(reply any) error {
	n, ok := reply.(int64)
	if ok && n == 1 {
		return nil
	}
	if ok && n == 0 {
		return idempotency.ErrLeaseLost
	}
	return corrupt("transition reply %v", reply)
}

// decodeRecord decodes {state, fingerprint, status, header, body}.
func decodeRecord(r []any) (*idempotency.Record, error) {
	if len(r) != 5 {
		return nil, corrupt("record of %d fields", len(r))
	}
	f := make([]string, len(r))
	for i, x := range r {
		s, ok := x.(string)
		if !ok {
			return nil, corrupt("record field %d is %T", i, x)
		}
		f[i] = s
	}
	rec := &idempotency.Record{}
	if len(f[1]) != len(rec.Fingerprint) {
		return nil, corrupt("fingerprint of %d bytes", len(f[1]))
	}
	copy(rec.Fingerprint[:], f[1])
	switch f[0] {
	case StateInProgress:
		rec.State = idempotency.StateInProgress
	case StateCompleted:
		rec.State = idempotency.StateCompleted
		status, err := strconv.Atoi(f[2])
		if err != nil {
			return nil, corrupt("status %q", f[2])
		}
		h, err := DecodeHeader([]byte(f[3]))
		if err != nil {
			return nil, fmt.Errorf("%w: %w", idempotency.ErrUnavailable, err)
		}
		rec.Response = &idempotency.Response{Status: status, Header: h, Body: []byte(f[4])}
	default:
		return nil, corrupt("state %q", f[0])
	}
	return rec, nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: redis: unexpected "+format, append([]any{idempotency.ErrUnavailable}, args...)...)
}

// Record sizes.
const (
	// MaxRecordHeaderBytes is the most a stored response's header may take
	// in an idempotency record: 1 MiB, net/http's DefaultMaxHeaderBytes.
	// The stores do not store a response with a larger header.
	MaxRecordHeaderBytes = 1 << 20
	// recordFieldBytes covers the fields of an idempotency record other
	// than the response's header and body (state, fingerprint, status) and
	// the reply's array elements.
	recordFieldBytes = 4 << 10
	// DefaultRecordBytes is RecordBytes(idempotency.DefaultMaxResponseBytes):
	// 2 MiB and 4 KiB.
	DefaultRecordBytes = idempotency.DefaultMaxResponseBytes + MaxRecordHeaderBytes + recordFieldBytes
)

// RecordBytes returns the largest reply an idempotency record makes when
// it holds a response body of up to maxResponseBytes
// (idempotency.max_response_bytes; idempotency.DefaultMaxResponseBytes
// when not positive): the body, MaxRecordHeaderBytes of header, and 4 KiB
// for the other fields.
func RecordBytes(maxResponseBytes int64) int64 {
	if maxResponseBytes <= 0 {
		maxResponseBytes = idempotency.DefaultMaxResponseBytes
	}
	return maxResponseBytes + MaxRecordHeaderBytes + recordFieldBytes
}
