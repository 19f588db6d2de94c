package idempotencytest

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/nonce"
)

// RunNonceClaimer runs the suite of idempotency.NonceClaimer: the joint
// write answers as adding the nonce and then claiming would, one after the
// other. newClaimer returns a fresh claimer, also an idempotency.Store,
// whose NonceStore keeps exact entries.
func RunNonceClaimer(t *testing.T, newClaimer func(t *testing.T) idempotency.NonceClaimer) {
	t.Helper()
	ctx := context.Background()
	fp := sha256.Sum256([]byte("request"))
	entry := func() nonce.Entry {
		now := time.Now()
		return nonce.Entry{Scope: "key-a", Key: uuid.NewString(), Owner: "key-a", Timestamp: now, Expires: now.Add(time.Minute)}
	}
	key := func() string { return "principal\x00" + uuid.NewString() }

	t.Run("AddsTheNonceAndClaims", func(t *testing.T) {
		s := newClaimer(t)
		e, k := entry(), key()
		c, nerr, cerr := s.ClaimWithNonce(ctx, e, "key-a", k, fp, time.Minute)
		require.NoError(t, nerr)
		require.NoError(t, cerr)
		require.True(t, c.Acquired)
		require.NotEmpty(t, c.Token)
		require.ErrorIs(t, s.NonceStore().Add(ctx, e), nonce.ErrReplayed, "the nonce was added")
		c2, err := s.(idempotency.Store).Claim(ctx, k, fp, time.Minute)
		require.NoError(t, err)
		require.False(t, c2.Acquired, "the key was claimed")
		require.Equal(t, idempotency.StateInProgress, c2.Existing.State)
		require.NoError(t, s.(idempotency.Store).Complete(ctx, k, c.Token, &idempotency.Response{Status: 201, Body: []byte("done")}, time.Minute),
			"the token completes the claim")
	})

	t.Run("AReplayedNonceMakesNoClaim", func(t *testing.T) {
		s := newClaimer(t)
		e, k := entry(), key()
		require.NoError(t, s.NonceStore().Add(ctx, e))
		_, nerr, cerr := s.ClaimWithNonce(ctx, e, "key-a", k, fp, time.Minute)
		require.ErrorIs(t, nerr, nonce.ErrReplayed)
		require.NoError(t, cerr)
		c, err := s.(idempotency.Store).Claim(ctx, k, fp, time.Minute)
		require.NoError(t, err)
		require.True(t, c.Acquired, "no claim was made for the replay")
	})

	t.Run("ALiveRecordIsReturnedAndTheNonceStaysAdded", func(t *testing.T) {
		s := newClaimer(t)
		k := key()
		first, nerr, cerr := s.ClaimWithNonce(ctx, entry(), "key-a", k, fp, time.Minute)
		require.NoError(t, nerr)
		require.NoError(t, cerr)
		require.NoError(t, s.(idempotency.Store).Complete(ctx, k, first.Token, &idempotency.Response{Status: 201, Body: []byte("done")}, time.Minute))
		e := entry()
		c, nerr, cerr := s.ClaimWithNonce(ctx, e, "key-a", k, fp, time.Minute)
		require.NoError(t, nerr)
		require.NoError(t, cerr)
		require.False(t, c.Acquired)
		require.NotNil(t, c.Existing.Response)
		assert.Equal(t, []byte("done"), c.Existing.Response.Body)
		require.ErrorIs(t, s.NonceStore().Add(ctx, e), nonce.ErrReplayed, "the retry's nonce was added")
	})

	t.Run("ConcurrentCopiesHaveOneWinner", func(t *testing.T) {
		s := newClaimer(t)
		e, k := entry(), key()
		var acquired, replayed atomic.Int32
		var wg sync.WaitGroup
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, nerr, cerr := s.ClaimWithNonce(ctx, e, "key-a", k, fp, time.Minute)
				switch {
				case nerr == nil && cerr == nil && c.Acquired:
					acquired.Add(1)
				case errorIs(nerr, nonce.ErrReplayed):
					replayed.Add(1)
				default:
					t.Errorf("copy: %+v %v %v", c, nerr, cerr)
				}
			}()
		}
		wg.Wait()
		assert.Equal(t, int32(1), acquired.Load())
		assert.Equal(t, int32(49), replayed.Load())
	})

	t.Run("CanceledContextIsTheNonceStoresFailure", func(t *testing.T) {
		s := newClaimer(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, nerr, cerr := s.ClaimWithNonce(cctx, entry(), "key-a", key(), fp, time.Minute)
		require.ErrorIs(t, nerr, nonce.ErrUnavailable)
		require.NoError(t, cerr)
	})
}

func errorIs(err, target error) bool { return err != nil && errors.Is(err, target) }
