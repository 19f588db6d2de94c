package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/replayguard/replayguard/redisstore/layout"
)

// ErrTaggingMismatch reports a Redis whose records are tagged otherwise
// than this instance would tag them (see CheckTagging).
var ErrTaggingMismatch = errors.New("redisstore: the Redis holds records of another tagging")

// CheckTagging records the tagging of keys in Redis, under
// keys.TaggingMarker(), unless one is recorded already, and fails with
// ErrTaggingMismatch when the one recorded is another: instances that tag
// differently write one record under two names and would not see each
// other's nonces and idempotency records. One SET … NX GET, within
// timeout. The marker does not expire; after every instance has stopped,
// deleting it lets the tagging change.
//
// Instances of this package's own stores built without CheckTagging (the
// Traefik plugin, which tags by key) neither record nor check it.
func CheckTagging(ctx context.Context, c Client, keys layout.Keys, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	key, mine := keys.TaggingMarker(), keys.Tagging.String()
	v, err := c.Process(ctx, Cmd{Args: []any{"set", key, mine, "nx", "get"}})
	if err != nil {
		return fmt.Errorf("redis: recording the tagging in %s: %w", key, err)
	}
	if v == nil || v == mine {
		return nil
	}
	return fmt.Errorf("%w: %s says %v, this instance tags by %s; every instance sharing the Redis must use the same (delete %s once all have stopped to change it)",
		ErrTaggingMismatch, key, v, mine, key)
}
