// Package bloomcore is replayguard's Bloom filters in the standard library
// alone: the arithmetic every store keeping Bloom bits must agree on, the
// in-process store (Memory, which package bloom presents) and the local
// shield. Package redisstore keeps the same layout in Redis bitmaps; both
// take it from here, so an entry lands in the same bucket, partition and
// bit positions wherever it is checked.
//
//   - The element is nonce.ScopedKey(Entry.Scope, Entry.Key).
//   - The bucket is floor(signed timestamp / width) (BucketIndex), computed
//     on the signed timestamp, never on the receiving clock, so every
//     instance picks the same one. The width defaults to DefaultBucketWidth.
//   - Inside a bucket the partition is FNV-1a 64(element) mod partitions
//     (Partition, DefaultPartitions).
//   - A partition's share of the configured capacity is PartitionCapacity;
//     sub-filter i holds SubCapacity = c·2^i entries at SubRate = p/2^(i+1),
//     so that the rates of a partition's sub-filters sum below p. Optimal
//     sizes a filter (the values of bits-and-blooms' EstimateParameters).
//   - The bit positions of an element are Locations (those of
//     bits-and-blooms/bloom/v3: 128-bit MurmurHash3 of the element and of
//     the element followed by the byte 1, combined by double hashing), each
//     taken modulo the filter's size in bits.
//
// Package bloom's tests hold Optimal and Locations equal to bits-and-blooms'
// over a million random elements and every (m, k) the stores' sizing
// gives, and this package's tests hold Memory's bits to those of
// bits-and-blooms filters fed the same elements.
//
// Memory is `nonce.mode: bloom` with `nonce.store: memory`. Shield is
// `nonce.local_shield`: an in-process filter (a Memory) in front of a
// shared store.
//
// The package imports only the standard library and package nonce, and
// keeps to the Go the Yaegi interpreter runs (the Traefik plugin loads it):
// no min, max or clear, no iterators, no generics. What runs on every check
// is also written for the interpreter's costs (see Memory).
package bloomcore
