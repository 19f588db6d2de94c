package main

import "runtime/metrics"

// heapLive returns the live heap at the last garbage collection: what the
// memory stores' bounds (idempotency.memory_max_bytes, nonce.max_entries)
// are held to.
func heapLive() float64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return float64(s[0].Value.Uint64())
}
