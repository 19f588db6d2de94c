package redisstore

import (
	"context"
	"errors"
	"fmt"
)

// SafeEvictionPolicy is the only maxmemory-policy under which Redis never
// drops a nonce record before it expires: every other policy, volatile-*
// included (nonce records carry TTLs), may evict one under memory pressure
// and let a replay of it through.
const SafeEvictionPolicy = "noeviction"

// EvictionPolicy returns the maxmemory-policy of the Redis behind c, read
// with CONFIG GET; on a Cluster, the first master's policy other than
// noeviction, if any. It fails where CONFIG is disabled or renamed (as on
// many managed services).
func EvictionPolicy(ctx context.Context, c Client) (string, error) {
	ps, err := c.ConfigGet(ctx, "maxmemory-policy")
	if err != nil {
		return "", fmt.Errorf("redis: CONFIG GET maxmemory-policy: %w", err)
	}
	if len(ps) == 0 {
		return "", errors.New("redis: CONFIG GET maxmemory-policy: no value")
	}
	for _, p := range ps {
		if p != SafeEvictionPolicy {
			return p, nil
		}
	}
	return ps[0], nil
}

// EvictionWarning returns the warning an operator should see about the
// eviction policy of the Redis behind c: "" when it is noeviction, else
// why a replay window may reopen, or that the policy could not be read.
func EvictionWarning(ctx context.Context, c Client) string {
	p, err := EvictionPolicy(ctx, c)
	switch {
	case err != nil:
		return fmt.Sprintf("redis maxmemory-policy could not be checked (%v); any policy other than %s can evict unexpired nonce and idempotency records and let replays through", err, SafeEvictionPolicy)
	case p != SafeEvictionPolicy:
		return fmt.Sprintf("redis maxmemory-policy is %q: under memory pressure Redis may evict unexpired nonce and idempotency records and let replays through; set it to %s", p, SafeEvictionPolicy)
	}
	return ""
}
