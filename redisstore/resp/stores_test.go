package resp_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/idempotency/idempotencytest"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/nonce/noncetest"
	"github.com/replayguard/replayguard/redisstore"
	"github.com/replayguard/replayguard/redisstore/layout"
	"github.com/replayguard/replayguard/redisstore/redistest"
	"github.com/replayguard/replayguard/redisstore/resp"
)

var taggings = map[string]layout.Tagging{"key-tag": layout.TagKey, "principal-tag": layout.TagPrincipal}

// conformance runs both suites through c.
func conformance(t *testing.T, c *resp.Client) {
	for name, tag := range taggings {
		t.Run("nonce/"+name, func(t *testing.T) {
			t.Parallel()
			noncetest.Run(t, func(t *testing.T) nonce.Store {
				return redisstore.NewNonce(c, redisstore.WithKeyPrefix(uniquePrefix()), redisstore.WithTagging(tag), redisstore.WithTimeout(slow))
			})
		})
		t.Run("idempotency/"+name, func(t *testing.T) {
			t.Parallel()
			idempotencytest.Run(t, func(t *testing.T) idempotency.Store {
				return redisstore.NewIdempotency(c, redisstore.WithKeyPrefix(uniquePrefix()), redisstore.WithTagging(tag), redisstore.WithTimeout(slow))
			})
		})
	}
}

// TestAcrossTransports shares one Redis between the resp stores and
// redisstore's on go-redis, as a Traefik plugin and the binary would.
func TestAcrossTransports(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	across(t, newClient(t, resp.Options{Addr: srv.Addr()}), newGoRedis(t, srv.Addr()))
}

func across(t *testing.T, rc *resp.Client, gc redisstore.Client) {
	for name, tag := range taggings {
		t.Run("nonce/"+name, func(t *testing.T) {
			t.Parallel()
			prefix := uniquePrefix()
			r := redisstore.NewNonce(rc, redisstore.WithKeyPrefix(prefix), redisstore.WithTagging(tag), redisstore.WithTimeout(slow))
			g := redisstore.NewNonce(gc, redisstore.WithKeyPrefix(prefix), redisstore.WithTagging(tag), redisstore.WithTimeout(slow))
			nonceAcross(t, r, g)
		})
		t.Run("idempotency/"+name, func(t *testing.T) {
			t.Parallel()
			prefix := uniquePrefix()
			r := redisstore.NewIdempotency(rc, redisstore.WithKeyPrefix(prefix), redisstore.WithTagging(tag), redisstore.WithTimeout(slow))
			g := redisstore.NewIdempotency(gc, redisstore.WithKeyPrefix(prefix), redisstore.WithTagging(tag), redisstore.WithTimeout(slow))
			idempotencyAcross(t, r, g)
		})
	}
}

func entry(key string) nonce.Entry {
	now := time.Now()
	return nonce.Entry{Scope: "client-a", Key: key, Timestamp: now, Expires: now.Add(time.Minute)}
}

// A nonce accepted by either store is a replay for both.
func nonceAcross(t *testing.T, r *redisstore.Nonce, g *redisstore.Nonce) {
	ctx := context.Background()
	require.Equal(t, g.Keys(), r.Keys())
	for i := 0; i < 20; i++ {
		e := entry(uuid.NewString())
		first, second := nonce.Store(r), nonce.Store(g)
		if i%2 == 1 {
			first, second = g, r
		}
		require.NoError(t, first.Add(ctx, e))
		require.ErrorIs(t, second.Add(ctx, e), nonce.ErrReplayed, "accepted by one transport, a replay for the other")
		require.ErrorIs(t, first.Add(ctx, e), nonce.ErrReplayed)
	}
	// Many instances of both kinds racing for one nonce: one winner.
	e := entry(uuid.NewString())
	var wg sync.WaitGroup
	results := make(chan error, 32)
	for i := 0; i < 32; i++ {
		s := nonce.Store(r)
		if i%2 == 1 {
			s = g
		}
		wg.Add(1)
		go func() { defer wg.Done(); results <- s.Add(ctx, e) }()
	}
	wg.Wait()
	close(results)
	won := 0
	for err := range results {
		if err == nil {
			won++
			continue
		}
		require.ErrorIs(t, err, nonce.ErrReplayed)
	}
	assert.Equal(t, 1, won)
}

// An idempotency record claimed and completed through one store is the
// same record through the other, in progress or completed.
func idempotencyAcross(t *testing.T, r *redisstore.Idempotency, g *redisstore.Idempotency) {
	ctx := context.Background()
	fp := sha256.Sum256([]byte("POST /v1/charges"))
	other := sha256.Sum256([]byte("POST /v1/refunds"))
	want := &idempotency.Response{
		Status: 201,
		Header: http.Header{"Content-Type": {"application/json"}, "X-Multi": {"1", "", "3"}, "X-Bin": {"\x00\xff"}},
		Body:   []byte("{\"id\":\"ch_1\"}\x00\xff\r\n"),
	}
	for _, dir := range []struct {
		name     string
		from, to idempotency.Store
	}{{"resp to go-redis", r, g}, {"go-redis to resp", g, r}} {
		t.Run(dir.name, func(t *testing.T) {
			key := "principal\x00" + uuid.NewString()
			c, err := dir.from.Claim(ctx, key, fp, time.Minute)
			require.NoError(t, err)
			require.True(t, c.Acquired)

			// In progress across transports: a conflict, with the first
			// request's fingerprint.
			c2, err := dir.to.Claim(ctx, key, other, time.Minute)
			require.NoError(t, err)
			require.False(t, c2.Acquired)
			assert.Equal(t, idempotency.StateInProgress, c2.Existing.State)
			assert.Equal(t, idempotency.Fingerprint(fp), c2.Existing.Fingerprint)
			require.NoError(t, dir.to.Renew(ctx, key, c.Token, time.Minute), "the holder's token is the record's, whoever checks it")

			require.NoError(t, dir.from.Complete(ctx, key, c.Token, want, time.Minute))
			c3, err := dir.to.Claim(ctx, key, fp, time.Minute)
			require.NoError(t, err)
			require.False(t, c3.Acquired)
			require.Equal(t, idempotency.StateCompleted, c3.Existing.State)
			assert.Equal(t, idempotency.Fingerprint(fp), c3.Existing.Fingerprint)
			assert.Equal(t, want.Status, c3.Existing.Response.Status)
			assert.Equal(t, want.Header, c3.Existing.Response.Header)
			assert.Equal(t, want.Body, c3.Existing.Response.Body)
			require.ErrorIs(t, dir.to.Complete(ctx, key, c.Token, want, time.Minute), idempotency.ErrLeaseLost)

			// Released through one, free for the other.
			key = "principal\x00" + uuid.NewString()
			c, err = dir.from.Claim(ctx, key, fp, time.Minute)
			require.NoError(t, err)
			require.NoError(t, dir.to.Release(ctx, key, c.Token))
			c4, err := dir.from.Claim(ctx, key, other, time.Minute)
			require.NoError(t, err)
			assert.True(t, c4.Acquired)
		})
	}
}

// After the server closed every pooled connection, the stores' next calls
// are resent once on a new connection and succeed.
func TestStoresResendOnDeadConnections(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newClient(t, resp.Options{Addr: srv.Addr(), PoolSize: 4})
	n := redisstore.NewNonce(c, redisstore.WithKeyPrefix(uniquePrefix()), redisstore.WithTimeout(slow))
	s := redisstore.NewIdempotency(c, redisstore.WithKeyPrefix(uniquePrefix()), redisstore.WithTimeout(slow))
	ctx := context.Background()
	fill := func() {
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); _, _ = c.Do(ctx, "BLPOP", "empty", "0.05") }()
		}
		wg.Wait()
	}
	fp := sha256.Sum256([]byte("r"))
	for i := 0; i < 3; i++ {
		fill()
		_, err := srv.Do("CLIENT", "KILL", "TYPE", "normal")
		require.NoError(t, err)
		require.NoError(t, n.Add(ctx, entry(uuid.NewString())))
		claim, err := s.Claim(ctx, "p\x00"+uuid.NewString(), fp, time.Minute)
		require.NoError(t, err)
		assert.True(t, claim.Acquired)
	}
}

// Redis killed and restarted on its port (appendfsync always): while it is
// down, store calls fail within about the timeout with the stores'
// ErrUnavailable; once it is back the same Client serves again, and what
// was accepted before the kill is still a replay.
func TestStoresAcrossRestart(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.WithPersistence())
	const timeout = 100 * time.Millisecond
	c := newClient(t, resp.Options{Addr: srv.Addr(), Timeout: timeout})
	n := redisstore.NewNonce(c, redisstore.WithTimeout(slow))
	s := redisstore.NewIdempotency(c, redisstore.WithTimeout(slow))
	ctx := context.Background()
	before := entry(uuid.NewString())
	require.NoError(t, n.Add(ctx, before))
	fp := sha256.Sum256([]byte("r"))
	claim, err := s.Claim(ctx, "p\x00op", fp, time.Minute)
	require.NoError(t, err)
	require.NoError(t, s.Complete(ctx, "p\x00op", claim.Token, &idempotency.Response{Status: 201, Body: []byte("done")}, time.Hour))

	srv.Kill()
	for i := 0; i < 5; i++ {
		start := time.Now()
		err := n.Add(ctx, entry(uuid.NewString()))
		require.ErrorIs(t, err, nonce.ErrUnavailable)
		require.NotErrorIs(t, err, nonce.ErrReplayed)
		assert.Less(t, time.Since(start), timeout+400*time.Millisecond)
		_, err = s.Claim(ctx, "p\x00op", fp, time.Minute)
		require.ErrorIs(t, err, idempotency.ErrUnavailable)
	}
	require.ErrorIs(t, n.Ping(ctx), nonce.ErrUnavailable)
	require.ErrorIs(t, s.Ping(ctx), idempotency.ErrUnavailable)

	srv.Restart()
	require.NoError(t, n.Ping(ctx))
	require.ErrorIs(t, n.Add(ctx, before), nonce.ErrReplayed, "accepted before the kill, a replay after the restart")
	require.NoError(t, n.Add(ctx, entry(uuid.NewString())))
	claim, err = s.Claim(ctx, "p\x00op", fp, time.Minute)
	require.NoError(t, err)
	require.False(t, claim.Acquired)
	assert.Equal(t, []byte("done"), claim.Existing.Response.Body)
}

// A stalled Redis costs a store call its timeout: ErrUnavailable, never a
// replay.
func TestStoresOnAStalledServer(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	const timeout = 100 * time.Millisecond
	c := newClient(t, resp.Options{Addr: srv.Addr()})
	n := redisstore.NewNonce(c, redisstore.WithTimeout(timeout))
	ctx := context.Background()
	require.NoError(t, n.Add(ctx, entry(uuid.NewString())))
	srv.Pause()
	start := time.Now()
	err := n.Add(ctx, entry(uuid.NewString()))
	elapsed := time.Since(start)
	srv.Resume()
	require.ErrorIs(t, err, nonce.ErrUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, elapsed, timeout+400*time.Millisecond)
	require.Eventually(t, func() bool { return n.Add(ctx, entry(uuid.NewString())) == nil }, 3*time.Second, 10*time.Millisecond)
}

// A key of another type is a server error, reported as unavailable (as
// redisstore does), with the typed error in the chain.
func TestStoresOnWrongType(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newClient(t, resp.Options{Addr: srv.Addr()})
	ctx := context.Background()
	prefix := uniquePrefix()
	n := redisstore.NewNonce(c, redisstore.WithKeyPrefix(prefix))
	s := redisstore.NewIdempotency(c, redisstore.WithKeyPrefix(prefix))
	e := entry("n-1")
	_, err := c.Do(ctx, "LPUSH", n.Keys().Nonce(e.Scope, e.Key), "x")
	require.NoError(t, err)
	err = n.Add(ctx, e)
	require.ErrorIs(t, err, nonce.ErrUnavailable)
	var re *resp.Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "WRONGTYPE", re.Prefix())

	_, err = c.Do(ctx, "SET", s.Keys().Idempotency("p\x00k"), "x")
	require.NoError(t, err)
	_, err = s.Claim(ctx, "p\x00k", sha256.Sum256(nil), time.Minute)
	require.ErrorIs(t, err, idempotency.ErrUnavailable)
	require.ErrorAs(t, err, &re)
	assert.Contains(t, re.Message, "WRONGTYPE")

	// A record that does not decode is unavailable, not a crash.
	key := s.Keys().Idempotency("p\x00bad")
	_, err = c.Do(ctx, "HSET", key, "s", "c", "tok", "t", "fp", "short", "st", "200", "h", "", "b", "")
	require.NoError(t, err)
	_, err = s.Claim(ctx, "p\x00bad", sha256.Sum256(nil), time.Minute)
	require.ErrorIs(t, err, idempotency.ErrUnavailable)
	assert.False(t, errors.Is(err, idempotency.ErrLeaseLost))
}

// The idempotency scripts load themselves again after SCRIPT FLUSH.
func TestIdempotencyAfterScriptFlush(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newClient(t, resp.Options{Addr: srv.Addr()})
	s := redisstore.NewIdempotency(c)
	ctx := context.Background()
	fp := sha256.Sum256([]byte("r"))
	for i := 0; i < 3; i++ {
		_, err := srv.Do("SCRIPT", "FLUSH")
		require.NoError(t, err)
		key := "p\x00" + strconv.Itoa(i)
		claim, err := s.Claim(ctx, key, fp, time.Minute)
		require.NoError(t, err)
		require.True(t, claim.Acquired)
		_, err = srv.Do("SCRIPT", "FLUSH")
		require.NoError(t, err)
		require.NoError(t, s.Complete(ctx, key, claim.Token, &idempotency.Response{Status: 200}, time.Minute))
	}
	calls := redistest.CommandCalls(mustInfo(t, srv))
	assert.Equal(t, int64(6), calls["eval"], "every run after a flush fell back to EVAL")
}

func mustInfo(t *testing.T, srv *redistest.Server) string {
	t.Helper()
	info, err := srv.Do("INFO", "commandstats")
	require.NoError(t, err)
	return info
}

// The largest record the idempotency store keeps is read back within the
// reply limit, the default one and one set by WithMaxResponseBytes; a
// response whose header would make its record too large to read back is
// not stored, and its key is free again.
func TestIdempotencyLargestRecords(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newClient(t, resp.Options{Addr: srv.Addr()})
	ctx := context.Background()
	fp := sha256.Sum256([]byte("r"))
	header := http.Header{"X-Big": {strings.Repeat("h", layout.MaxRecordHeaderBytes-64)}}
	for _, tc := range []struct {
		name string
		max  int64
		opts []redisstore.Option
	}{
		{"default", idempotency.DefaultMaxResponseBytes, nil},
		{"4MiB", 4 << 20, []redisstore.Option{redisstore.WithMaxResponseBytes(4 << 20)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := redisstore.NewIdempotency(c, append(tc.opts, redisstore.WithKeyPrefix(uniquePrefix()))...)
			claim, err := s.Claim(ctx, "p\x00full", fp, time.Minute)
			require.NoError(t, err)
			body := []byte(strings.Repeat("b", int(tc.max)))
			require.NoError(t, s.Complete(ctx, "p\x00full", claim.Token, &idempotency.Response{Status: 201, Header: header, Body: body}, time.Minute))
			claim, err = s.Claim(ctx, "p\x00full", fp, time.Minute)
			require.NoError(t, err)
			require.False(t, claim.Acquired)
			assert.Equal(t, len(body), len(claim.Existing.Response.Body))
			assert.Equal(t, header, claim.Existing.Response.Header)

			claim, err = s.Claim(ctx, "p\x00header", fp, time.Minute)
			require.NoError(t, err)
			huge := http.Header{"X-Big": {strings.Repeat("h", layout.MaxRecordHeaderBytes)}}
			err = s.Complete(ctx, "p\x00header", claim.Token, &idempotency.Response{Status: 201, Header: huge}, time.Minute)
			require.ErrorIs(t, err, redisstore.ErrRecordTooLarge)
			claim, err = s.Claim(ctx, "p\x00header", fp, time.Minute)
			require.NoError(t, err)
			assert.True(t, claim.Acquired, "released")
		})
	}
	// A record larger than the store's limit, written by a store allowing
	// more, is refused as a protocol error rather than read.
	big := redisstore.NewIdempotency(c, redisstore.WithKeyPrefix("shared"), redisstore.WithMaxResponseBytes(4<<20))
	claim, err := big.Claim(ctx, "p\x00k", fp, time.Minute)
	require.NoError(t, err)
	require.NoError(t, big.Complete(ctx, "p\x00k", claim.Token, &idempotency.Response{Status: 201, Body: make([]byte, 3<<20)}, time.Minute))
	_, err = redisstore.NewIdempotency(c, redisstore.WithKeyPrefix("shared")).Claim(ctx, "p\x00k", fp, time.Minute)
	require.ErrorIs(t, err, idempotency.ErrUnavailable)
	require.ErrorIs(t, err, resp.ErrProtocol)
}
