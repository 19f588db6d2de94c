// Package noncetest is the conformance suite every nonce.Store must pass.
//
//	func TestConformance(t *testing.T) {
//		noncetest.Run(t, func(t *testing.T) nonce.Store { return nonce.NewMemory() })
//	}
package noncetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/nonce"
)

// suite holds what every subtest of Run shares.
type suite struct {
	newStore func(t *testing.T) nonce.Store
	ctx      context.Context
}

// entry is a replay key of client-a that lives ttl from now.
func (*suite) entry(key string, ttl time.Duration) nonce.Entry {
	now := time.Now()
	return nonce.Entry{Scope: "client-a", Key: key, Timestamp: now, Expires: now.Add(ttl)}
}

// Run runs the conformance suite. newStore returns a fresh, empty store for
// each subtest; the store reads the real clock.
func Run(t *testing.T, newStore func(t *testing.T) nonce.Store) {
	t.Helper()
	su := &suite{newStore: newStore, ctx: context.Background()}
	for _, c := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"FirstAddSucceedsSecondIsReplay", su.firstAddSucceedsSecondIsReplay},
		{"ScopesAreIndependent", su.scopesAreIndependent},
		{"ScopeAndKeyDoNotCollide", su.scopeAndKeyDoNotCollide},
		{"DistinctKeysAreFresh", su.distinctKeysAreFresh},
		{"ConcurrentAddsOfOneKeyHaveOneWinner", su.concurrentAddsOfOneKeyHaveOneWinner},
		{"ConcurrentDistinctKeys", su.concurrentDistinctKeys},
		{"ExpiryIsHonoured", su.expiryIsHonoured},
		{"ExpiryPastYear2262IsKept", su.expiryPastYear2262IsKept},
		{"CanceledContext", su.canceledContext},
	} {
		t.Run(c.name, c.run)
	}
}

func (su *suite) firstAddSucceedsSecondIsReplay(t *testing.T) {
	s := su.newStore(t)
	e := su.entry(uuid.NewString(), time.Minute)
	require.NoError(t, s.Add(su.ctx, e))
	err := s.Add(su.ctx, e)
	require.ErrorIs(t, err, nonce.ErrReplayed)
	require.ErrorIs(t, s.Add(su.ctx, e), nonce.ErrReplayed, "stays replayed")
}

func (su *suite) scopesAreIndependent(t *testing.T) {
	s := su.newStore(t)
	e := su.entry(uuid.NewString(), time.Minute)
	require.NoError(t, s.Add(su.ctx, e))
	other := e
	other.Scope = "client-b"
	require.NoError(t, s.Add(su.ctx, other), "same nonce under another key id is fresh")
	require.ErrorIs(t, s.Add(su.ctx, other), nonce.ErrReplayed)
}

func (su *suite) scopeAndKeyDoNotCollide(t *testing.T) {
	s := su.newStore(t)
	a := su.entry("ab", time.Minute)
	a.Scope = "x"
	b := su.entry("b", time.Minute)
	b.Scope = "xa"
	require.NoError(t, s.Add(su.ctx, a))
	require.NoError(t, s.Add(su.ctx, b), "scope/key boundary must be unambiguous")
}

func (su *suite) distinctKeysAreFresh(t *testing.T) {
	s := su.newStore(t)
	for i := 0; i < 1000; i++ {
		require.NoError(t, s.Add(su.ctx, su.entry(fmt.Sprintf("nonce-%06d-%s", i, uuid.NewString()), time.Minute)))
	}
}

func (su *suite) concurrentAddsOfOneKeyHaveOneWinner(t *testing.T) {
	s := su.newStore(t)
	e := su.entry(uuid.NewString(), time.Minute)
	const n = 64
	var ok, replayed atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			err := s.Add(su.ctx, e)
			switch {
			case err == nil:
				ok.Add(1)
			case assert.ErrorIs(t, err, nonce.ErrReplayed):
				replayed.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	require.Equal(t, int64(1), ok.Load(), "exactly one concurrent Add wins")
	require.Equal(t, int64(n-1), replayed.Load())
}

func (su *suite) concurrentDistinctKeys(t *testing.T) {
	s := su.newStore(t)
	const workers, per = 8, 200
	var wg sync.WaitGroup
	var failures atomic.Int64
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				if err := s.Add(su.ctx, su.entry(uuid.NewString(), time.Minute)); err != nil {
					failures.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	require.Zero(t, failures.Load(), "fresh keys must all be accepted")
}

func (su *suite) expiryIsHonoured(t *testing.T) {
	s := su.newStore(t)
	e := su.entry(uuid.NewString(), 300*time.Millisecond)
	require.NoError(t, s.Add(su.ctx, e))
	require.ErrorIs(t, s.Add(su.ctx, e), nonce.ErrReplayed, "replayed before expiry")
	time.Sleep(700 * time.Millisecond)
	require.NoError(t, s.Add(su.ctx, e), "forgotten after expiry")
}

func (su *suite) expiryPastYear2262IsKept(t *testing.T) {
	// A window of centuries (published vectors are replayed with
	// such windows) puts Expires past what unix nanoseconds hold.
	s := su.newStore(t)
	e := su.entry(uuid.NewString(), 250*365*24*time.Hour)
	require.NoError(t, s.Add(su.ctx, e))
	require.ErrorIs(t, s.Add(su.ctx, e), nonce.ErrReplayed, "a far expiry must not wrap into the past")
}

func (su *suite) canceledContext(t *testing.T) {
	s := su.newStore(t)
	cctx, cancel := context.WithCancel(su.ctx)
	cancel()
	err := s.Add(cctx, su.entry(uuid.NewString(), time.Minute))
	require.Error(t, err)
	require.NotErrorIs(t, err, nonce.ErrReplayed, "a store failure is never reported as a replay")
}

// RunQuota runs the key-share part of the suite, for stores that bound
// each owner's share (Entry.Owner). newStore returns a fresh, empty store
// in which one owner may hold share live records; the store reads the real
// clock.
func RunQuota(t *testing.T, share int, newStore func(t *testing.T) nonce.Store) {
	t.Helper()
	ctx := context.Background()
	entry := func(owner string, ttl time.Duration) nonce.Entry {
		now := time.Now()
		return nonce.Entry{Scope: owner, Owner: owner, Key: uuid.NewString(), Timestamp: now, Expires: now.Add(ttl)}
	}

	t.Run("OwnerOverItsShareIsRefusedOthersAreNot", func(t *testing.T) {
		s := newStore(t)
		var first nonce.Entry
		for i := 0; i < share; i++ {
			e := entry("key-a", time.Minute)
			if i == 0 {
				first = e
			}
			require.NoError(t, s.Add(ctx, e), "record %d of the share", i)
		}
		err := s.Add(ctx, entry("key-a", time.Minute))
		require.ErrorIs(t, err, nonce.ErrQuotaExceeded)
		require.NotErrorIs(t, err, nonce.ErrReplayed)
		var q *nonce.QuotaError
		require.ErrorAs(t, err, &q)
		assert.Greater(t, q.RetryAfter, time.Duration(0))
		assert.LessOrEqual(t, q.RetryAfter, time.Minute, "until the earliest record expires")
		require.ErrorIs(t, s.Add(ctx, first), nonce.ErrReplayed, "a replay stays a replay over the share")
		require.NoError(t, s.Add(ctx, entry("key-b", time.Minute)), "another owner is unaffected")
	})

	t.Run("ShareFreesAsRecordsExpire", func(t *testing.T) {
		s := newStore(t)
		for i := 0; i < share; i++ {
			require.NoError(t, s.Add(ctx, entry("key-a", 300*time.Millisecond)))
		}
		err := s.Add(ctx, entry("key-a", time.Minute))
		require.ErrorIs(t, err, nonce.ErrQuotaExceeded)
		var q *nonce.QuotaError
		require.ErrorAs(t, err, &q)
		assert.LessOrEqual(t, q.RetryAfter, 300*time.Millisecond)
		time.Sleep(500 * time.Millisecond)
		require.NoError(t, s.Add(ctx, entry("key-a", time.Minute)), "room again once records expire")
	})

	t.Run("EntriesWithoutOwnerAreNotCharged", func(t *testing.T) {
		s := newStore(t)
		for i := 0; i < share+1; i++ {
			e := entry("key-a", time.Minute)
			e.Owner = ""
			require.NoError(t, s.Add(ctx, e))
		}
	})
}
