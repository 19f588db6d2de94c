// Package bloom records replay keys in time-sliced Bloom filters: the
// nonce store of `mode: bloom`.
//
// Memory is bloomcore.Memory, written with the standard library alone so
// that the Traefik plugin, which its interpreter runs from source, keeps
// its filters the same way; this package's tests hold it, bit for bit, to
// bits-and-blooms/bloom/v3, the reference of the layout.
//
// Memory is a nonce.Store whose memory is bounded by a capacity and a target
// false-positive rate instead of by the traffic itself (about 5.6 bytes per
// nonce at 1e-9, see bloomcore.Optimal and bloomcore.BitsPerEntry). In exchange it may report a
// fresh nonce as replayed with that probability; the client re-signs and
// retries.
//
// # Layout
//
// The layout is package bloomcore's, deterministic so that every instance,
// and a store keeping the same bits elsewhere (package redisstore's Redis
// bitmaps), agrees on where an entry lives:
//
//   - The element is nonce.ScopedKey(Entry.Scope, Entry.Key).
//   - The bucket is floor(Entry.Timestamp / width), computed on the signed
//     timestamp, never on the receiving clock. The width defaults to
//     DefaultBucketWidth.
//   - Inside a bucket the partition is FNV-1a 64(element) mod partitions
//     (DefaultPartitions).
//   - A partition holds a stack of sub-filters. Sub-filter i has capacity
//     c·2^i and false-positive rate p/2·(1/2)^i, where c is the partition
//     capacity and p the target rate, and is sized with bloomcore.Optimal.
//     Bit positions are those of bits-and-blooms/bloom/v3, which
//     bloomcore.Locations computes without it (a test here holds the two
//     equal over a million elements and every size the stores use), each
//     taken modulo the sub-filter's size in bits.
//
// # Growth and expiry
//
// A filter never saturates silently: when the newest sub-filter of a
// partition has received its capacity a larger, tighter one is stacked on
// top, so the summed false-positive rate stays below the target however many
// entries arrive. A check tests every sub-filter and inserts into the newest.
// Stats exposes per-bucket fill ratio and estimated false-positive rate for
// metrics.
//
// A bucket is dropped once the latest Entry.Expires recorded in it has
// passed. Add drops expired buckets as it goes; Sweep does it on demand.
package bloom
