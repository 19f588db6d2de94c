package redisstore_test

import (
	"context"
	"crypto/sha256"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/idempotency/idempotencytest"
	"github.com/replayguard/replayguard/redisstore"
	"github.com/replayguard/replayguard/redisstore/layout"
	"github.com/replayguard/replayguard/redisstore/redistest"
)

func TestIdempotencyConformance(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	for client, c := range clients(t, slow, srv.Addr()) {
		for name, tag := range map[string]layout.Tagging{"key-tag": layout.TagKey, "principal-tag": layout.TagPrincipal} {
			t.Run(client+"/"+name, func(t *testing.T) {
				t.Parallel()
				idempotencytest.Run(t, func(t *testing.T) idempotency.Store {
					return redisstore.NewIdempotency(c, redisstore.WithKeyPrefix(uniquePrefix(t)), redisstore.WithTagging(tag), redisstore.WithTimeout(slow))
				})
			})
		}
	}
}

// Each transition is one round trip: a replay is one EVALSHA; a first
// execution is two (claim, complete). After SCRIPT FLUSH (or a failover to
// a replica that never ran the script) the call falls back to EVAL once.
func TestIdempotencyRoundTripsAndScriptFallback(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := redisstore.NewIdempotency(newClient(t, slow, srv.Addr()))
	ctx := context.Background()
	fp := sha256.Sum256([]byte("req"))
	resp := &idempotency.Response{Status: 201, Header: http.Header{"X-A": {"1", "2"}}, Body: []byte("ok")}

	calls := func() map[string]int64 {
		info, err := srv.Do("INFO", "commandstats")
		require.NoError(t, err)
		return redistest.CommandCalls(info)
	}
	delta := func(before, after map[string]int64) map[string]int64 {
		out := map[string]int64{}
		for k, v := range after {
			if d := v - before[k]; d > 0 && k != "info" {
				out[k] = d
			}
		}
		return out
	}

	scripted := func(d map[string]int64) int64 { return d["evalsha"] + d["eval"] }

	// The first call of each script falls back to EVAL, which loads it.
	c, err := s.Claim(ctx, "p\x00warm", fp, time.Minute)
	require.NoError(t, err)
	require.NoError(t, s.Renew(ctx, "p\x00warm", c.Token, time.Minute))
	require.NoError(t, s.Release(ctx, "p\x00warm", c.Token))
	require.ErrorIs(t, s.Complete(ctx, "p\x00warm", c.Token, resp, time.Minute), idempotency.ErrLeaseLost)

	before := calls()
	c, err = s.Claim(ctx, "p\x00k1", fp, time.Minute)
	require.NoError(t, err)
	require.True(t, c.Acquired)
	require.NoError(t, s.Complete(ctx, "p\x00k1", c.Token, resp, time.Minute))
	first := delta(before, calls())
	assert.Equal(t, int64(2), scripted(first), "first execution: claim + complete, %v", first)
	assert.Zero(t, first["eval"], "scripts are cached")

	before = calls()
	replay, err := s.Claim(ctx, "p\x00k1", fp, time.Minute)
	require.NoError(t, err)
	require.False(t, replay.Acquired)
	assert.Equal(t, resp.Body, replay.Existing.Response.Body)
	again := delta(before, calls())
	assert.Equal(t, int64(1), scripted(again), "a replay is one round trip, %v", again)

	_, err = srv.Do("SCRIPT", "FLUSH")
	require.NoError(t, err)
	before = calls()
	replay, err = s.Claim(ctx, "p\x00k1", fp, time.Minute)
	require.NoError(t, err, "NOSCRIPT falls back to EVAL")
	assert.Equal(t, idempotency.StateCompleted, replay.Existing.State)
	flushed := delta(before, calls())
	assert.Equal(t, int64(1), flushed["eval"], "%v", flushed)
}

func TestIdempotencyTTLsFollowTheServerClock(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := redisstore.NewIdempotency(newClient(t, slow, srv.Addr()), redisstore.WithKeyPrefix("acme"))
	ctx := context.Background()
	fp := sha256.Sum256([]byte("req"))
	c, err := s.Claim(ctx, "p\x00k", fp, 30*time.Second)
	require.NoError(t, err)
	key := "acme:i:{" + layout.Digest("p\x00k") + "}"
	pttl, err := srv.Do("PTTL", key)
	require.NoError(t, err)
	assert.Regexp(t, `^(29|30)\d{3}$`, pttl, "the lease is the record's PEXPIRE")
	require.NoError(t, s.Complete(ctx, "p\x00k", c.Token, &idempotency.Response{Status: 200, Body: []byte{0, 1, 2}}, time.Hour))
	pttl, err = srv.Do("PTTL", key)
	require.NoError(t, err)
	assert.Regexp(t, `^(3599|3600)\d{3}$`, pttl, "completed: the TTL")
	state, err := srv.Do("HGET", key, "s")
	require.NoError(t, err)
	assert.Equal(t, layout.StateCompleted, state)
}
