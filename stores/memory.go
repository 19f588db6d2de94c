package stores

import (
	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/nonce"
)

// FuncWatcher receives figures read at each collection; *metrics.Metrics
// implements it.
type FuncWatcher interface {
	WatchFunc(name, help string, counter bool, fn func() float64)
}

// WatchMemory reports the memory stores' fill to w, for each store that is
// "memory": the live records of the exact nonce store (what
// nonce.max_entries bounds) and the heap the idempotency store's records
// hold (what idempotency.memory_max_bytes bounds).
func (s *Set) WatchMemory(w FuncWatcher) {
	var nonces []*nonce.Memory
	if m, ok := s.Nonce.(*nonce.Memory); ok {
		nonces = append(nonces, m)
	}
	for _, sub := range s.nonces {
		if m, ok := sub.Nonce.(*nonce.Memory); ok && m != s.Nonce {
			nonces = append(nonces, m)
		}
	}
	if len(nonces) > 0 {
		w.WatchFunc("replayguard_nonce_memory_entries", "Live records of the exact memory nonce store (bounded by nonce.max_entries).", false,
			func() float64 {
				n := 0
				for _, m := range nonces {
					n += m.Len()
				}
				return float64(n)
			})
	}
	if m, ok := s.Idempotency.(*idempotency.Memory); ok {
		w.WatchFunc("replayguard_idempotency_memory_bytes", "Heap the memory idempotency store's records hold (bounded by idempotency.memory_max_bytes).", false,
			func() float64 { return float64(m.Bytes()) })
	}
}
