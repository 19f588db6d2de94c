package redisstore_test

import (
	"context"
	"crypto/sha256"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/bloom"
	"github.com/replayguard/replayguard/bloom/bloomcore"
	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/idempotency/idempotencytest"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/redisstore"
	"github.com/replayguard/replayguard/redisstore/layout"
	"github.com/replayguard/replayguard/redisstore/redistest"
)

// jointStores builds, for each nonce store configuration, an idempotency
// store given that nonce store on c.
func jointStores(c redisstore.Client, opts ...redisstore.Option) map[string]func(t *testing.T) idempotency.NonceClaimer {
	withShield := func(t *testing.T, n nonce.Store) nonce.Store {
		seen, err := bloom.NewMemory(100_000, bloomcore.DefaultShieldFalsePositiveRate, 10*time.Minute)
		require.NoError(t, err)
		return bloomcore.NewShield(n, seen)
	}
	exact := func(t *testing.T, o []redisstore.Option) nonce.Store { return redisstore.NewNonce(c, o...) }
	bloomStore := func(t *testing.T, o []redisstore.Option) nonce.Store {
		b, err := redisstore.NewBloomNonce(c, 100_000, 1e-9, 10*time.Minute, o...)
		require.NoError(t, err)
		return b
	}
	build := func(newNonces func(*testing.T, []redisstore.Option) nonce.Store, shield bool) func(t *testing.T) idempotency.NonceClaimer {
		return func(t *testing.T) idempotency.NonceClaimer {
			o := append([]redisstore.Option{redisstore.WithKeyPrefix(uniquePrefix(t)), redisstore.WithTimeout(slow)}, opts...)
			n := newNonces(t, o)
			if shield {
				n = withShield(t, n)
			}
			return redisstore.NewIdempotency(c, append(o, redisstore.WithNonceStore(n))...)
		}
	}
	return map[string]func(t *testing.T) idempotency.NonceClaimer{
		"exact":        build(exact, false),
		"bloom":        build(bloomStore, false),
		"exact+shield": build(exact, true),
		"bloom+shield": build(bloomStore, true),
	}
}

func TestNonceClaimerConformance(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	for client, c := range clients(t, slow, srv.Addr()) {
		for _, tag := range []layout.Tagging{layout.TagKey, layout.TagPrincipal} {
			for name, newClaimer := range jointStores(c, redisstore.WithTagging(tag)) {
				t.Run(client+"/"+tag.String()+"/"+name, func(t *testing.T) {
					t.Parallel()
					idempotencytest.RunNonceClaimer(t, newClaimer)
					idempotencytest.Run(t, func(t *testing.T) idempotency.Store {
						return newClaimer(t).(idempotency.Store)
					})
				})
			}
		}
	}
}

// commandDelta returns the commands srv ran since before, by name.
func commandDelta(t *testing.T, srv *redistest.Server, before map[string]int64) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for k, v := range commandCalls(t, srv) {
		if d := v - before[k]; d > 0 && k != "info" {
			out[k] = d
		}
	}
	return out
}

func commandCalls(t *testing.T, srv *redistest.Server) map[string]int64 {
	t.Helper()
	info, err := srv.Do("INFO", "commandstats")
	require.NoError(t, err)
	return redistest.CommandCalls(info)
}

// On a standalone server a covered request's nonce and claim are one
// script run in either mode, with either client: the server receives one
// EVALSHA, and runs the SET or BITFIELD inside it. A replay is one call
// too, and reads no record.
func TestNonceClaimerIsOneRoundTrip(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	m := srv.Monitor(t)
	ctx := context.Background()
	fp := sha256.Sum256([]byte("req"))
	for client, c := range clients(t, slow, srv.Addr()) {
		for _, mode := range []string{"exact", "bloom"} {
			s := jointStores(c)[mode](t)
			// Package resp's client learns that the server is standalone
			// in its first call; the first joint run loads the script.
			for i := 0; i < 2; i++ {
				_, _, _ = s.ClaimWithNonce(ctx, entry("warm-"+uuid.NewString()), "p", "p\x00warm-"+uuid.NewString(), fp, time.Minute)
			}
			m.Calls()

			e := entry(uuid.NewString())
			before := commandCalls(t, srv)
			c1, nerr, cerr := s.ClaimWithNonce(ctx, e, "p", "p\x00"+uuid.NewString(), fp, time.Minute)
			require.NoError(t, nerr, client+"/"+mode)
			require.NoError(t, cerr)
			require.True(t, c1.Acquired)
			assert.Equal(t, []string{"evalsha"}, storeCalls(m), "%s/%s: the nonce and the claim in one call", client, mode)
			d := commandDelta(t, srv, before)
			assert.Equal(t, int64(1), d["hset"], "%s/%s: the record was written: %v", client, mode, d)
			assert.Equal(t, int64(1), d["set"]+d["bitfield"], "%s/%s: the nonce was written: %v", client, mode, d)

			before = commandCalls(t, srv)
			_, nerr, cerr = s.ClaimWithNonce(ctx, e, "p", "p\x00"+uuid.NewString(), fp, time.Minute)
			require.ErrorIs(t, nerr, nonce.ErrReplayed)
			require.NoError(t, cerr)
			assert.Equal(t, []string{"evalsha"}, storeCalls(m), "%s/%s: a replay is one call", client, mode)
			d = commandDelta(t, srv, before)
			assert.Zero(t, d["hmget"]+d["hset"], "%s/%s: a replay reads and writes no record: %v", client, mode, d)
		}
	}
}

// storeCalls returns the commands clients sent since the last call, the
// test's own INFO left out.
func storeCalls(m *redistest.Monitor) []string {
	var out []string
	for _, c := range m.Calls() {
		if c != "info" {
			out = append(out, c)
		}
	}
	return out
}

func entry(key string) nonce.Entry {
	now := time.Now()
	return nonce.Entry{Scope: "p", Key: key, Timestamp: now, Expires: now.Add(time.Minute)}
}

// A replayed nonce leaves no record behind, in either mode: the claim is
// made only after the nonce is found fresh, in the same run.
func TestNonceClaimerReplayWritesNoRecord(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newClient(t, slow, srv.Addr())
	ctx := context.Background()
	fp := sha256.Sum256([]byte("req"))
	for _, mode := range []string{"exact", "bloom"} {
		prefix := "rep" + mode
		var n nonce.Store = redisstore.NewNonce(c, redisstore.WithKeyPrefix(prefix))
		if mode == "bloom" {
			b, err := redisstore.NewBloomNonce(c, 100_000, 1e-9, 10*time.Minute, redisstore.WithKeyPrefix(prefix))
			require.NoError(t, err)
			n = b
		}
		s := redisstore.NewIdempotency(c, redisstore.WithKeyPrefix(prefix), redisstore.WithNonceStore(n))
		e := entry(uuid.NewString())
		require.NoError(t, n.Add(ctx, e))
		key := "p\x00" + uuid.NewString()
		_, nerr, _ := s.ClaimWithNonce(ctx, e, "p", key, fp, time.Minute)
		require.ErrorIs(t, nerr, nonce.ErrReplayed, mode)
		exists, err := srv.Do("EXISTS", layout.Keys{Prefix: prefix}.Idempotency(key))
		require.NoError(t, err)
		assert.Equal(t, "0", exists, "%s: no record for a replay", mode)
	}
}

// With a local shield in front, a repeat the shield has seen is answered
// without any call, and the claim it would have made is not made.
func TestNonceClaimerShieldAnswersRepeatsLocally(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newClient(t, slow, srv.Addr())
	ctx := context.Background()
	fp := sha256.Sum256([]byte("req"))
	seen, err := bloom.NewMemory(1000, bloomcore.DefaultShieldFalsePositiveRate, 10*time.Minute)
	require.NoError(t, err)
	sh := bloomcore.NewShield(redisstore.NewNonce(c, redisstore.WithKeyPrefix("shj")), seen)
	s := redisstore.NewIdempotency(c, redisstore.WithKeyPrefix("shj"), redisstore.WithNonceStore(sh))
	assert.Same(t, sh, s.NonceStore().(*bloomcore.Shield))
	e := entry(uuid.NewString())
	c1, nerr, cerr := s.ClaimWithNonce(ctx, e, "p", "p\x00k1", fp, time.Minute)
	require.NoError(t, nerr)
	require.NoError(t, cerr)
	require.True(t, c1.Acquired)
	before := commandCalls(t, srv)
	_, nerr, _ = s.ClaimWithNonce(ctx, e, "p", "p\x00k2", fp, time.Minute)
	require.ErrorIs(t, nerr, nonce.ErrReplayed)
	assert.Empty(t, commandDelta(t, srv, before), "the shield answered")
	assert.Equal(t, uint64(1), sh.Saved())
}

// When a Bloom check finds its sub-filter full, the run makes no claim:
// the newer sub-filters are read first and the key claimed after, so
// every fresh entry is still claimed once and every replay refused, across
// growth.
func TestNonceClaimerBloomGrowth(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newClient(t, slow, srv.Addr())
	ctx := context.Background()
	fp := sha256.Sum256([]byte("req"))
	// A tiny capacity: one partition, a few dozen entries per sub-filter.
	b, err := redisstore.NewBloomNonce(c, 20, 1e-6, time.Minute, redisstore.WithKeyPrefix("grow"), redisstore.WithPartitions(1),
		redisstore.WithBucketWidth(time.Minute))
	require.NoError(t, err)
	capacity, _, _ := b.SubFilter(0)
	s := redisstore.NewIdempotency(c, redisstore.WithKeyPrefix("grow"), redisstore.WithNonceStore(b))
	ts := time.Now()
	var entries []nonce.Entry
	for i := 0; i < 4*int(capacity); i++ {
		e := nonce.Entry{Scope: "p", Key: "g-" + strconv.Itoa(i), Timestamp: ts, Expires: time.Now().Add(time.Minute)}
		key := "p\x00g-" + strconv.Itoa(i)
		cl, nerr, cerr := s.ClaimWithNonce(ctx, e, "p", key, fp, time.Minute)
		require.NoError(t, nerr, "entry %d", i)
		require.NoError(t, cerr)
		require.True(t, cl.Acquired, "entry %d", i)
		again, err := s.Claim(ctx, key, fp, time.Minute)
		require.NoError(t, err)
		require.False(t, again.Acquired, "entry %d was claimed", i)
		entries = append(entries, e)
	}
	for i, e := range entries {
		_, nerr, _ := s.ClaimWithNonce(ctx, e, "p", "p\x00other-"+strconv.Itoa(i), fp, time.Minute)
		require.ErrorIs(t, nerr, nonce.ErrReplayed, "entry %d", i)
	}
	stats, err := b.Stats(ctx)
	require.NoError(t, err)
	require.Len(t, stats, 1)
	assert.Greater(t, stats[0].SubFilters, 1, "the partition grew")
}

// lostReply is a Client whose script runs reach Redis but whose replies
// are lost, as when a timeout strikes after the server ran the script.
type lostReply struct {
	redisstore.Client
	lose atomic.Bool
}

func (l *lostReply) RunScript(ctx context.Context, s *redisstore.Script, keys []string, cmd redisstore.Cmd) (any, error) {
	v, err := l.Client.RunScript(ctx, s, keys, cmd)
	if len(keys) > 1 && l.lose.Load() {
		return nil, context.DeadlineExceeded
	}
	return v, err
}

func (l *lostReply) Standalone() bool { return true }

// A joint run whose reply is lost is the nonce's failure, and the claim it
// made is released in the background, so that the client's retry (a new
// nonce, the same key) is not refused as in progress until the lease ends.
func TestNonceClaimerReleasesAfterALostReply(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()
	fp := sha256.Sum256([]byte("req"))
	for _, mode := range []string{"exact", "bloom"} {
		c := &lostReply{Client: newClient(t, slow, srv.Addr())}
		prefix := "lost" + mode
		var n nonce.Store = redisstore.NewNonce(c, redisstore.WithKeyPrefix(prefix))
		if mode == "bloom" {
			b, err := redisstore.NewBloomNonce(c, 100_000, 1e-9, 10*time.Minute, redisstore.WithKeyPrefix(prefix))
			require.NoError(t, err)
			n = b
		}
		s := redisstore.NewIdempotency(c, redisstore.WithKeyPrefix(prefix), redisstore.WithNonceStore(n))
		key := "p\x00" + uuid.NewString()
		c.lose.Store(true)
		_, nerr, cerr := s.ClaimWithNonce(ctx, entry(uuid.NewString()), "p", key, fp, time.Hour)
		require.ErrorIs(t, nerr, nonce.ErrUnavailable, mode)
		require.NoError(t, cerr)
		c.lose.Store(false)
		record := layout.Keys{Prefix: prefix}.Idempotency(key)
		require.Eventually(t, func() bool {
			v, err := srv.Do("EXISTS", record)
			return err == nil && v == "0"
		}, 5*time.Second, 10*time.Millisecond, "%s: the claim is released", mode)
		retry, nerr, cerr := s.ClaimWithNonce(ctx, entry(uuid.NewString()), "p", key, fp, time.Hour)
		require.NoError(t, nerr)
		require.NoError(t, cerr)
		assert.True(t, retry.Acquired, "%s: the retry runs", mode)
	}
}

// The store given no nonce store, or one on another client, claims in a
// call of its own: NonceStore reports what it was given, and ClaimWithNonce
// adds and claims in sequence.
func TestNonceClaimerOtherClientsInSequence(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()
	fp := sha256.Sum256([]byte("req"))
	c1, c2 := newClient(t, slow, srv.Addr()), newClient(t, slow, srv.Addr())
	assert.Nil(t, redisstore.NewIdempotency(c1).NonceStore())
	_, nerr, _ := redisstore.NewIdempotency(c1).ClaimWithNonce(ctx, entry(uuid.NewString()), "p", "p\x00k", fp, time.Minute)
	require.ErrorIs(t, nerr, nonce.ErrUnavailable, "no nonce store to add to")

	n := redisstore.NewNonce(c2, redisstore.WithKeyPrefix("other"))
	s := redisstore.NewIdempotency(c1, redisstore.WithKeyPrefix("other"), redisstore.WithNonceStore(n))
	assert.Same(t, n, s.NonceStore())
	_, err := s.Claim(ctx, "p\x00warm", fp, time.Minute) // loads the claim script
	require.NoError(t, err)
	m := srv.Monitor(t)
	got, nerr, cerr := s.ClaimWithNonce(ctx, entry(uuid.NewString()), "p", "p\x00k", fp, time.Minute)
	require.NoError(t, nerr)
	require.NoError(t, cerr)
	require.True(t, got.Acquired)
	assert.Equal(t, []string{"set", "evalsha"}, m.Calls(), "the nonce on its own client, then the claim")
}
