package resp

import (
	"fmt"
	"time"

	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/redis/layout"
)

// StoreOption configures Nonce and Idempotency.
type StoreOption func(*storeOptions)

type storeOptions struct {
	keys     layout.Keys
	timeout  time.Duration
	now      func() time.Time
	maxBytes int64 // of a stored response body
}

func newStoreOptions(opts []StoreOption) storeOptions {
	o := storeOptions{
		keys:     layout.Keys{Prefix: layout.DefaultPrefix},
		timeout:  DefaultTimeout,
		now:      time.Now,
		maxBytes: idempotency.DefaultMaxResponseBytes,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.keys.Prefix == "" {
		o.keys.Prefix = layout.DefaultPrefix
	}
	return o
}

// WithKeyPrefix sets the prefix of every key (redis.key_prefix); stores
// sharing a Redis with the gateway's must use its prefix. Default
// layout.DefaultPrefix ("rg").
func WithKeyPrefix(p string) StoreOption {
	return func(o *storeOptions) { o.keys.Prefix = p }
}

// WithTagging chooses the hash tag of nonce and idempotency keys (see
// layout.Tagging); it must match the gateway's. Default layout.TagKey.
func WithTagging(t layout.Tagging) StoreOption {
	return func(o *storeOptions) { o.keys.Tagging = t }
}

// WithTimeout bounds each store call, its one resend included
// (redis.timeout). Default DefaultTimeout (200 ms).
func WithTimeout(d time.Duration) StoreOption {
	return func(o *storeOptions) {
		if d > 0 {
			o.timeout = d
		}
	}
}

// WithClock sets the clock deciding whether a nonce entry has already
// expired. Expiry itself is done by Redis on its own clock. Default
// time.Now.
func WithClock(now func() time.Time) StoreOption {
	return func(o *storeOptions) {
		if now != nil {
			o.now = now
		}
	}
}

// WithMaxResponseBytes sets the largest response body the idempotency
// store keeps (idempotency.max_response_bytes), which sizes the largest
// record it reads back: RecordBytes(n), in place of the Client's
// Options.MaxReplyBytes. Default idempotency.DefaultMaxResponseBytes
// (1 MiB).
func WithMaxResponseBytes(n int64) StoreOption {
	return func(o *storeOptions) {
		if n > 0 {
			o.maxBytes = n
		}
	}
}

// unavailable wraps a Redis or context error in the store's sentinel, as
// package redisstore does.
func unavailable(sentinel, err error) error {
	return fmt.Errorf("%w: redis: %w", sentinel, err)
}
