package bloom

import (
	"time"

	"github.com/replayguard/replayguard/bloom/bloomcore"
)

// Defaults of Memory.
const (
	// DefaultBucketWidth is the span of signed timestamps sharing one bucket.
	DefaultBucketWidth = bloomcore.DefaultBucketWidth
	// DefaultPartitions is the number of independently locked partitions of
	// a bucket.
	DefaultPartitions = bloomcore.DefaultPartitions
	// DefaultMaxSubFilters is the most sub-filters a partition grows to:
	// four hold 1+2+4+8 = 15 times its share of the configured capacity.
	DefaultMaxSubFilters = bloomcore.DefaultMaxSubFilters
)

// ErrInvalidParameter reports a constructor argument or option out of range.
var ErrInvalidParameter = bloomcore.ErrInvalidParameter

// Memory is an in-process nonce.Store keeping time-sliced, partitioned,
// scalable Bloom filters (see the package documentation for the layout).
// It may report a fresh entry as replayed with at most the configured
// false-positive rate; it never forgets an unexpired entry. It is safe for
// concurrent use: Adds of different partitions do not wait for each other.
//
// It is bloomcore.Memory, written with the standard library alone so that
// the Traefik plugin runs the same store.
type Memory = bloomcore.Memory

// Option configures a Memory store.
type Option = bloomcore.Option

// BucketStats describes one bucket, for metrics.
type BucketStats = bloomcore.BucketStats

// WithBucketWidth sets the span of signed timestamps sharing one bucket.
// Narrower buckets are dropped sooner after their entries expire, wider ones
// mean fewer, larger filters. It must be positive. Default
// DefaultBucketWidth (one minute).
func WithBucketWidth(d time.Duration) Option { return bloomcore.WithBucketWidth(d) }

// WithPartitions sets the number of independently locked partitions each
// bucket is split into. It must be at least 1. Default DefaultPartitions (16).
func WithPartitions(n int) Option { return bloomcore.WithPartitions(n) }

// WithMaxSubFilters sets the most sub-filters a partition stacks as it
// grows; the n-th holds 2^(n-1) times the first, so a partition holds at
// most 2^n - 1 times its share of the configured capacity. Past that, Add
// refuses new entries with an error wrapping nonce.ErrUnavailable (a
// replay is still reported as one): memory stays bounded and nothing is
// forgotten. It must be between 1 and 24. Default DefaultMaxSubFilters.
func WithMaxSubFilters(n int) Option { return bloomcore.WithMaxSubFilters(n) }

// WithKeyShare bounds the entries one owner (nonce.Entry.Owner) may add to
// a bucket to the fraction share of the most the bucket holds (see
// WithMaxSubFilters), so that one key cannot fill the store for every
// other: past it, that owner's Adds fail with a *nonce.QuotaError whose
// RetryAfter is the time until the next bucket begins, while other owners'
// Adds go on. share must be in (0, 1]. Default 1: no per-owner bound.
func WithKeyShare(share float64) Option { return bloomcore.WithKeyShare(share) }

// WithClock sets the clock used to decide expiry, and the bucket of an entry
// without a timestamp. Default time.Now.
func WithClock(now func() time.Time) Option { return bloomcore.WithClock(now) }

// NewMemory returns an empty Bloom-filter store sized for capacity entries
// per window at false-positive rate fpRate.
//
// window is the span of signed timestamps a request may carry (the timestamp
// tolerance plus the allowed future skew) and capacity the number of nonces
// expected within it. Each bucket of width G is sized for
// ceil(capacity·G/window) entries split evenly across its partitions; a
// partition receiving more grows rather than exceed fpRate. fpRate must be in
// (0, 1), capacity and window positive.
func NewMemory(capacity uint, fpRate float64, window time.Duration, opts ...Option) (*Memory, error) {
	return bloomcore.NewMemory(capacity, fpRate, window, opts...)
}
