package traefik

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/nonce"
)

// storeSet is the stores one store configuration uses.
type storeSet struct {
	nonces nonce.Store
	idem   idempotency.Store
}

// registry keeps store sets alive across New calls. Traefik builds the
// middleware once per router that uses it and again on every dynamic
// configuration reload; a memory store rebuilt each time would forget the
// nonces it saw (a replay through another router, or after a reload, would
// pass), and a Redis client rebuilt each time would leak its connections.
// Sets are keyed by everything that chooses a store, so instances whose
// stores are configured alike share them.
var registry = struct {
	mu   sync.Mutex
	sets map[string]*storeSet
}{sets: map[string]*storeSet{}}

// storeKey identifies the stores cfg selects.
func storeKey(cfg replayguard.Config) string {
	r := cfg.Redis
	parts := []string{
		"nonce", cfg.Nonce.Store, cfg.Nonce.Mode, fmt.Sprint(cfg.Nonce.MaxEntries),
		"idempotency", cfg.Idempotency.Store,
	}
	if cfg.Nonce.Store == replayguard.StoreRedis || cfg.Idempotency.Store == replayguard.StoreRedis {
		parts = append(parts, "redis", strings.Join(r.Addrs, ","), r.Username, r.Password,
			fmt.Sprint(r.DB), fmt.Sprint(r.TLS), r.Timeout.String(), r.KeyPrefix)
	}
	return strings.Join(parts, "\x00")
}

// sharedStores returns the store set of cfg, building it on first use.
func sharedStores(ctx context.Context, cfg replayguard.Config) (*storeSet, error) {
	key := storeKey(cfg)
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if s, ok := registry.sets[key]; ok {
		return s, nil
	}
	s, err := openStores(ctx, cfg)
	if err != nil {
		return nil, err
	}
	registry.sets[key] = s
	return s, nil
}

func openStores(ctx context.Context, cfg replayguard.Config) (*storeSet, error) {
	s := &storeSet{}
	var rc *redisConn
	if cfg.Nonce.Store == replayguard.StoreRedis || cfg.Idempotency.Store == replayguard.StoreRedis {
		var err error
		if rc, err = dialRedis(ctx, cfg); err != nil {
			return nil, err
		}
	}
	if cfg.Nonce.Store == replayguard.StoreRedis {
		s.nonces = rc.nonces()
	} else {
		s.nonces = nonce.NewMemory(nonce.WithMaxEntries(cfg.Nonce.MaxEntries))
	}
	if cfg.Idempotency.Store == replayguard.StoreRedis {
		s.idem = rc.idempotency()
	} else {
		s.idem = idempotency.NewMemory()
	}
	return s, nil
}
