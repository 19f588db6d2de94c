package nonce

import (
	"context"
	"errors"
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
)

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
}

// Store records replay keys.
type Store interface {
	// Add records e. It returns an error wrapping ErrReplayed when the same
	// scoped key is already recorded and unexpired, and one wrapping
	// ErrUnavailable when the store cannot answer. Add is atomic: of many
	// concurrent Adds of one entry exactly one returns nil.
	Add(ctx context.Context, e Entry) error
}

// Pinger is implemented by stores that can report their health.
type Pinger interface {
	Ping(ctx context.Context) error
}
