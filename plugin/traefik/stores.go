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

// storeSet is the stores one middleware instance uses.
type storeSet struct {
	nonces nonce.Store
	idem   idempotency.Store
}

// registry keeps stores alive across New calls. Traefik builds the
// middleware once per router that uses it and again on every dynamic
// configuration reload; a memory store rebuilt each time would forget the
// nonces it saw (a replay through another router, or after a reload, would
// pass), and a Redis client rebuilt each time would leak its connections.
//
// The nonce store, the idempotency store and the Redis client are each
// keyed by only the options that choose them, so that instances differing
// in anything else (keys, window, the other store) still share them: every
// instance with a memory nonce store shares the one memory nonce store, and
// every instance with a Redis nonce store on the same Redis shares its
// client. A memory store's cap (nonce.maxEntries,
// idempotency.memoryMaxBytes) and key shares are those of the instance that
// created it.
var registry = struct {
	mu     sync.Mutex
	nonces map[string]nonce.Store
	idem   map[string]idempotency.Store
	redis  map[string]*redisConn
}{nonces: map[string]nonce.Store{}, idem: map[string]idempotency.Store{}, redis: map[string]*redisConn{}}

// redisKey identifies the Redis cfg names, and how its keys are named.
func redisKey(cfg replayguard.Config) string {
	r := cfg.Redis
	return strings.Join([]string{strings.Join(r.Addrs, ","), r.Username, r.Password,
		fmt.Sprint(r.DB), fmt.Sprint(r.TLS), r.Timeout.String(), r.KeyPrefix}, "\x00")
}

// sharedStores returns the stores of cfg, building those not built yet.
func sharedStores(ctx context.Context, cfg replayguard.Config) (*storeSet, error) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	rc := func() (*redisConn, error) {
		k := redisKey(cfg)
		if c, ok := registry.redis[k]; ok {
			return c, nil
		}
		c, err := dialRedis(ctx, cfg)
		if err != nil {
			return nil, err
		}
		registry.redis[k] = c
		return c, nil
	}
	s := &storeSet{}

	nk := cfg.Nonce.Store + "\x00" + cfg.Nonce.Mode
	if cfg.Nonce.Store == replayguard.StoreRedis {
		nk += "\x00" + redisKey(cfg)
	}
	if ns, ok := registry.nonces[nk]; ok {
		s.nonces = ns
	} else {
		if cfg.Nonce.Store == replayguard.StoreRedis {
			c, err := rc()
			if err != nil {
				return nil, err
			}
			s.nonces = c.nonces()
		} else {
			s.nonces = nonce.NewMemory(cfg.NonceMemoryOptions()...)
		}
		registry.nonces[nk] = s.nonces
	}

	ik := cfg.Idempotency.Store
	if cfg.Idempotency.Store == replayguard.StoreRedis {
		ik += "\x00" + redisKey(cfg)
	}
	if is, ok := registry.idem[ik]; ok {
		s.idem = is
	} else {
		if cfg.Idempotency.Store == replayguard.StoreRedis {
			c, err := rc()
			if err != nil {
				return nil, err
			}
			s.idem = c.idempotency()
		} else {
			s.idem = idempotency.NewMemory(cfg.IdempotencyMemoryOptions()...)
		}
		registry.idem[ik] = s.idem
	}
	return s, nil
}
