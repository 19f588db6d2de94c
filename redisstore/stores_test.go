package redisstore_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/bloom/bloomcore"
	"github.com/replayguard/replayguard/confval"
	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/redisstore"
	"github.com/replayguard/replayguard/redisstore/layout"
	"github.com/replayguard/replayguard/redisstore/redistest"
	"github.com/replayguard/replayguard/signature/hmacsig"
	"github.com/replayguard/replayguard/stores"
)

type watcher struct {
	blooms map[string]func() []bloomcore.BucketStats
	funcs  map[string]func() float64
}

func (w *watcher) WatchBloom(name string, stats func() []bloomcore.BucketStats) {
	w.blooms[name] = stats
}
func (w *watcher) WatchFunc(name, _ string, _ bool, fn func() float64) { w.funcs[name] = fn }

// redisAt is the redis: section of the stores these tests open.
func redisAt(addr string) stores.Option {
	return stores.WithRedis(redisstore.Config{Addrs: []string{addr}, KeyPrefix: "st", Timeout: replayguard.Duration(slow)})
}

func redisConfig(addr string, mutate func(*replayguard.Config)) replayguard.Config {
	c := replayguard.Config{
		Keys:  []replayguard.KeyConfig{{ID: "a", Secrets: []string{"s"}}},
		Nonce: replayguard.NonceConfig{Store: "redis"},
	}
	c.Idempotency.Store = "redis"
	if mutate != nil {
		mutate(&c)
	}
	return c.WithDefaults()
}

// stores.Open builds the Redis stores a configuration names, on one shared
// client, and reports their statistics for metrics.
func TestStoresOpenRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()

	s, err := stores.Open(ctx, redisConfig(srv.Addr(), nil), redisAt(srv.Addr()))
	require.NoError(t, err)
	assert.IsType(t, &redisstore.Nonce{}, s.Nonce)
	assert.IsType(t, &redisstore.Idempotency{}, s.Idempotency)
	assert.Equal(t, []string{"nonce:redis-exact", "idempotency:redis"}, s.Names)
	require.NoError(t, s.Ping(ctx))
	require.NoError(t, s.Close())

	s, err = stores.Open(ctx, redisConfig(srv.Addr(), func(c *replayguard.Config) {
		c.Nonce.Mode = "bloom"
		c.Nonce.LocalShield = true
		c.Nonce.Capacity = 10_000
	}), redisAt(srv.Addr()))
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, []string{"nonce:redis-bloom+local-shield", "idempotency:redis"}, s.Names)
	e := nonce.Entry{Scope: "a", Key: "n-0123456789abcdef", Timestamp: time.Now(), Expires: time.Now().Add(time.Minute)}
	require.NoError(t, s.Nonce.Add(ctx, e))
	for i := 0; i < 3; i++ {
		require.ErrorIs(t, s.Nonce.Add(ctx, e), nonce.ErrReplayed)
	}
	w := &watcher{blooms: map[string]func() []bloomcore.BucketStats{}, funcs: map[string]func() float64{}}
	s.WatchRedis(w)
	assert.Equal(t, 3.0, w.funcs["replayguard_nonce_local_shield_saved_total"](), "three repeats answered in process")
	stats := w.blooms["nonce"]()
	require.Len(t, stats, 1)
	assert.Equal(t, uint64(1), stats[0].Entries)
	assert.Positive(t, stats[0].FalsePositiveRate)
}

// Under fail_mode closed an unreachable Redis fails Open naming the field;
// under open the gateway starts degraded and recovers when Redis answers.
func TestStoresOpenUnreachableRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	addr := srv.Addr()
	srv.Kill()
	ctx := context.Background()
	_, err := stores.Open(ctx, redisConfig(addr, nil), redisAt(addr))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nonce.store")

	s, err := stores.Open(ctx, redisConfig(addr, func(c *replayguard.Config) { c.FailMode = "open" }), redisAt(addr))
	require.NoError(t, err)
	defer s.Close()
	require.Error(t, s.Ping(ctx))
	srv.Restart()
	require.Eventually(t, func() bool { return s.Ping(ctx) == nil }, 5*time.Second, 20*time.Millisecond)
}

// stores.Open gives the Redis idempotency store the Set's Redis nonce
// store, so a Guard built from the Set adds a covered POST's nonce in its
// claim's call: a POST is two calls (the nonce with the claim, then the
// completion), a GET one, in exact and in Bloom mode behind the shield.
func TestStoresOpenRedisJointWrite(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()
	for _, mode := range []string{"exact", "bloom"} {
		cfg := redisConfig(srv.Addr(), func(c *replayguard.Config) {
			c.Keys = []replayguard.KeyConfig{{ID: "client-a", Secrets: []string{jointSecret}}}
			c.Nonce.Mode = mode
			c.Nonce.LocalShield = mode == "bloom"
			c.Nonce.Capacity = 10_000
		})
		s, err := stores.Open(ctx, cfg, redisAt(srv.Addr()))
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		nc, ok := s.Idempotency.(idempotency.NonceClaimer)
		require.True(t, ok)
		assert.Same(t, s.Nonce, nc.NonceStore(), "%s: the Set's nonce store", mode)

		g, err := replayguard.New(cfg, s.Options()...)
		require.NoError(t, err)
		h := g.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusCreated) }))
		serve := func(method string) int {
			body := []byte(`{"amount":100}`)
			r := httptest.NewRequest(method, "http://api.example.com/v1/charges", bytes.NewReader(body))
			if method == http.MethodPost {
				r.Header.Set("Idempotency-Key", uuid.NewString())
			}
			require.NoError(t, (&hmacsig.Signer{KeyID: "client-a", Secret: []byte(jointSecret)}).Sign(r, body))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			return w.Code
		}
		require.Equal(t, http.StatusCreated, serve(http.MethodPost)) // loads the scripts
		m := srv.Monitor(t)
		require.Equal(t, http.StatusCreated, serve(http.MethodPost))
		assert.Equal(t, []string{"evalsha", "evalsha"}, storeCalls(m), "%s: the nonce with the claim, then the completion", mode)
		require.Equal(t, http.StatusCreated, serve(http.MethodGet))
		calls := storeCalls(m)
		if mode == "bloom" {
			calls = slicesWithout(calls, "pexpireat") // an expiry update may ride along
		}
		want := map[string][]string{"exact": {"set"}, "bloom": {"bitfield"}}[mode]
		assert.Equal(t, want, calls, "%s: a GET is the nonce alone", mode)
	}
}

const jointSecret = "joint-secret-0123456789abcdef"

// Instances sharing a Redis must tag keys alike: stores.Open records its
// tagging in <prefix>:tagging and refuses another, naming redis.tagging.
func TestStoresOpenRefusesAnotherTagging(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()
	open := func(prefix, tagging string) (*stores.Set, error) {
		rc := redisstore.Section{Config: redisstore.Config{Addrs: []string{srv.Addr()}, KeyPrefix: prefix, Timeout: replayguard.Duration(slow)}, Tagging: tagging}
		return stores.Open(ctx, redisConfig(srv.Addr(), nil), stores.WithRedisSection(rc))
	}
	s, err := open("tagA", "principal")
	require.NoError(t, err)
	require.NoError(t, s.Close())
	v, err := srv.Do("GET", "tagA:tagging")
	require.NoError(t, err)
	assert.Equal(t, "principal", v)
	s, err = open("tagA", "principal")
	require.NoError(t, err, "the same tagging again")
	require.NoError(t, s.Close())

	_, err = open("tagA", "")
	require.ErrorIs(t, err, redisstore.ErrTaggingMismatch, "the default, key, against principal")
	var fe *replayguard.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "redis.tagging", fe.Field)

	s, err = open("tagB", "")
	require.NoError(t, err, "another prefix is another layout")
	require.NoError(t, s.Close())
	_, err = open("tagB", "principal")
	require.ErrorIs(t, err, redisstore.ErrTaggingMismatch)

	_, err = srv.Do("DEL", "tagB:tagging")
	require.NoError(t, err)
	s, err = open("tagB", "principal")
	require.NoError(t, err, "deleting the marker lets the tagging change")
	require.NoError(t, s.Close())
}

// redis.tagging is the binary's and the Caddy module's (Section), beside
// the settings every shape shares (Config).
func TestSectionTagging(t *testing.T) {
	c := redisstore.Section{Config: redisstore.Config{Addrs: []string{"127.0.0.1:6379"}}}
	assert.Equal(t, redisstore.TaggingKey, c.WithDefaults().Tagging)
	assert.Equal(t, redisstore.DefaultKeyPrefix, c.WithDefaults().KeyPrefix)
	assert.Equal(t, layout.TagKey, c.Keys().Tagging)
	c.Tagging = redisstore.TaggingPrincipal
	require.NoError(t, c.Validate())
	assert.Equal(t, layout.TagPrincipal, c.Keys().Tagging)
	c.Tagging = "nonce"
	var fe *confval.FieldError
	require.ErrorAs(t, c.Validate(), &fe)
	assert.Equal(t, "redis.tagging", fe.Field)
}
