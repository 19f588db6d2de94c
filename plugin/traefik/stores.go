package traefik

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/redisstore"
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
// Stores are keyed by the middleware's name and the options that shape
// them: every router using one middleware, and every reload of it, shares
// its stores, whatever else changes (a rotated secret, the window); two
// middlewares never share a store, so neither reads the other's nonces or
// stored responses even where their key ids coincide. Redis clients are
// keyed by the Redis options alone and shared; what separates two
// middlewares' records in one Redis is their redis.keyPrefix.
//
// Stores of a middleware that is removed or renamed stay here until
// Traefik restarts: a memory store then holds at most its caps
// (nonce.maxEntries, idempotency.memoryMaxBytes) and its records expire.
// A memory store's key shares are those of the instance that created it.
var registry = struct {
	mu     sync.Mutex
	nonces map[string]nonce.Store
	idem   map[string]idempotency.Store
	redis  map[string]*redisConn
}{nonces: map[string]nonce.Store{}, idem: map[string]idempotency.Store{}, redis: map[string]*redisConn{}}

// redisKey identifies the Redis cfg names, and how its keys are named.
func redisKey(r redisstore.Config) string {
	return strings.Join([]string{strings.Join(r.Addrs, ","), r.Username, r.Password,
		fmt.Sprint(r.DB), fmt.Sprint(r.TLS), r.Timeout.String(), r.KeyPrefix}, "\x00")
}

// nonceKey identifies the nonce store of middleware name under cfg.
func nonceKey(name string, cfg replayguard.Config, rc redisstore.Config) string {
	n := cfg.Nonce
	k := strings.Join([]string{name, n.Store, n.Mode, fmt.Sprint(n.MaxEntries)}, "\x00")
	if n.Store == replayguard.StoreRedis {
		k += "\x00" + redisKey(rc)
	}
	return k
}

// idempotencyKey identifies the idempotency store of middleware name under
// cfg.
func idempotencyKey(name string, cfg replayguard.Config, rc redisstore.Config) string {
	k := name + "\x00" + cfg.Idempotency.Store + "\x00" + fmt.Sprint(cfg.Idempotency.MemoryMaxBytes)
	if cfg.Idempotency.Store == replayguard.StoreRedis {
		// The largest record the store reads back follows
		// max_response_bytes.
		k += "\x00" + redisKey(rc) + "\x00" + fmt.Sprint(cfg.Idempotency.MaxResponseBytes)
	}
	return k
}

// sharedStores returns the stores of middleware name under cfg, building
// those not built yet.
func sharedStores(ctx context.Context, name string, cfg replayguard.Config, rc redisstore.Config) (*storeSet, error) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	conn := func() (*redisConn, error) {
		k := redisKey(rc)
		if c, ok := registry.redis[k]; ok {
			return c, nil
		}
		c, err := dialRedis(ctx, rc)
		if err != nil {
			return nil, err
		}
		registry.redis[k] = c
		return c, nil
	}
	s := &storeSet{}

	nk := nonceKey(name, cfg, rc)
	if ns, ok := registry.nonces[nk]; ok {
		s.nonces = ns
	} else {
		if cfg.Nonce.Store == replayguard.StoreRedis {
			c, err := conn()
			if err != nil {
				return nil, err
			}
			s.nonces = c.nonces()
		} else {
			s.nonces = nonce.NewMemory(cfg.NonceMemoryOptions()...)
		}
		registry.nonces[nk] = s.nonces
	}

	ik := idempotencyKey(name, cfg, rc)
	if is, ok := registry.idem[ik]; ok {
		s.idem = is
	} else {
		if cfg.Idempotency.Store == replayguard.StoreRedis {
			c, err := conn()
			if err != nil {
				return nil, err
			}
			s.idem = c.idempotency(cfg.Idempotency.MaxResponseBytes)
		} else {
			s.idem = idempotency.NewMemory(cfg.IdempotencyMemoryOptions()...)
		}
		registry.idem[ik] = s.idem
	}
	return s, nil
}
