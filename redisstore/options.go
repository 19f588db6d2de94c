package redisstore

import (
	"time"

	"github.com/replayguard/replayguard/bloom/bloomcore"
	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/redisstore/layout"
)

// Option configures a store.
type Option func(*options)

type options struct {
	keys       layout.Keys
	timeout    time.Duration
	now        func() time.Time
	width      time.Duration
	partitions int
	maxBytes   int64 // of a stored response body
	onGrowth   func(bloomcore.Growth)
	nonces     nonce.Store // see WithNonceStore
}

func newOptions(opts []Option) options {
	o := options{
		keys:       layout.Keys{Prefix: layout.DefaultPrefix},
		timeout:    DefaultTimeout,
		now:        time.Now,
		width:      bloomcore.DefaultBucketWidth,
		partitions: bloomcore.DefaultPartitions,
		maxBytes:   idempotency.DefaultMaxResponseBytes,
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
// sharing a Redis must use the same. Default layout.DefaultPrefix ("rg").
func WithKeyPrefix(p string) Option {
	return func(o *options) { o.keys.Prefix = p }
}

// WithTagging chooses the hash tag of nonce and idempotency keys (see
// layout.Tagging); stores sharing a Redis must use the same. Default
// layout.TagKey: records spread over every slot.
func WithTagging(t layout.Tagging) Option {
	return func(o *options) { o.keys.Tagging = t }
}

// WithTimeout bounds each store call, the client's resends included
// (redis.timeout). Default DefaultTimeout (200 ms).
func WithTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.timeout = d
		}
	}
}

// WithClock sets the clock deciding whether an entry has already expired
// and the bucket of an entry without a timestamp. Expiry itself is done by
// Redis on its own clock. Default time.Now.
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}

// WithBucketWidth sets the span of signed timestamps sharing one Bloom
// bucket (BloomNonce only). Default bloomcore.DefaultBucketWidth (one
// minute).
func WithBucketWidth(d time.Duration) Option {
	return func(o *options) { o.width = d }
}

// WithPartitions sets the number of partitions, and so of keys, each Bloom
// bucket is split into (BloomNonce only); in a Cluster they spread over the
// shards. Default bloomcore.DefaultPartitions (16).
func WithPartitions(n int) Option {
	return func(o *options) { o.partitions = n }
}

// WithGrowth sets a function the Bloom store calls when this instance
// learns that a partition has moved to a newer sub-filter (BloomNonce
// only): the bucket received more entries than its share of the
// configured capacity. Every instance sharing the Redis learns it on its
// own, so each reports it. It must be fast and safe for concurrent use.
// Default none.
func WithGrowth(f func(bloomcore.Growth)) Option {
	return func(o *options) { o.onGrowth = f }
}

// WithMaxResponseBytes sets the largest response body the idempotency
// store keeps (idempotency.max_response_bytes), which sizes the largest
// record it reads back: layout.RecordBytes(n). Default
// idempotency.DefaultMaxResponseBytes (1 MiB).
func WithMaxResponseBytes(n int64) Option {
	return func(o *options) {
		if n > 0 {
			o.maxBytes = n
		}
	}
}
