package traefik

import (
	"context"
	"crypto/tls"
	"time"

	"github.com/replayguard/replayguard/bloom/bloomcore"

	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/redisstore"
	"github.com/replayguard/replayguard/redisstore/resp"
)

// redisConn is the plugin's Redis: the stores of package redisstore, the
// binary's, on a standard-library RESP client, so they run the same
// commands, keys and scripts.
type redisConn struct {
	client redisstore.Client
	opts   []redisstore.Option
}

// dialRedis builds the client from cfg.redis. It connects lazily, so a
// Redis that is down at start does not fail the middleware: its requests
// follow fail_mode until Redis answers. With several addresses (a Cluster)
// the client loads the slot map (CLUSTER SLOTS) from any of them and routes
// each key to its slot's master, following MOVED and ASK and reloading the
// map after a failover. With redis.masterName the addresses are the
// Sentinels, which name the master and are asked again when it fails or
// turns replica.
func dialRedis(_ context.Context, r redisstore.Config) (*redisConn, error) {
	o := resp.Options{
		Username: r.Username,
		Password: r.Password,
		DB:       r.DB,
		Timeout:  r.Timeout.D(),
	}
	if r.MasterName != "" {
		o.MasterName = r.MasterName
		o.Sentinels = r.Addrs
	} else {
		o.Addr = r.Addrs[0]
		o.ClusterAddrs = r.Addrs[1:]
	}
	if r.TLS {
		o.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	c, err := resp.New(o)
	if err != nil {
		return nil, err
	}
	// Converted in an assignment of its own: Yaegi v0.16.1 panics
	// converting the interpreted *resp.Client to the interpreted interface
	// where it is handed on to the stores' constructors.
	var client redisstore.Client = c
	return &redisConn{client: client, opts: []redisstore.Option{
		redisstore.WithKeyPrefix(r.KeyPrefix),
		redisstore.WithTimeout(r.Timeout.D()),
	}}, nil
}

func (rc *redisConn) nonces() nonce.Store { return redisstore.NewNonce(rc.client, rc.opts...) }

// bloomNonces returns the Bloom nonce store of the binary on the same keys:
// capacity nonces per window at fpRate, growth reported to grew.
func (rc *redisConn) bloomNonces(capacity uint, fpRate float64, window time.Duration, grew func(bloomcore.Growth)) (*redisstore.BloomNonce, error) {
	opts := append(append([]redisstore.Option(nil), rc.opts...), redisstore.WithGrowth(grew))
	return redisstore.NewBloomNonce(rc.client, capacity, fpRate, window, opts...)
}

// idempotency returns an idempotency store whose records hold response
// bodies of up to maxResponseBytes (idempotency.max_response_bytes): the
// client reads a record back within layout.RecordBytes of it, and any other
// reply within resp.DefaultMaxReplyBytes.
func (rc *redisConn) idempotency(maxResponseBytes int64) idempotency.Store {
	opts := append(append([]redisstore.Option(nil), rc.opts...), redisstore.WithMaxResponseBytes(maxResponseBytes))
	return redisstore.NewIdempotency(rc.client, opts...)
}
