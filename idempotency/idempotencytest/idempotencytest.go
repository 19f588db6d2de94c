// Package idempotencytest is the conformance suite every idempotency.Store
// must pass.
//
//	func TestConformance(t *testing.T) {
//		idempotencytest.Run(t, func(t *testing.T) idempotency.Store { return idempotency.NewMemory() })
//	}
package idempotencytest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/idempotency"
)

// suite holds what every subtest of Run shares.
type suite struct {
	newStore func(t *testing.T) idempotency.Store
	ctx      context.Context
	fpA, fpB idempotency.Fingerprint
	resp     *idempotency.Response
}

// key returns a fresh scoped key.
func (*suite) key() string { return "principal\x00" + uuid.NewString() }

// Run runs the suite. newStore returns a store for each subtest; keys are
// unique per subtest, so a shared backing database is fine. The store reads
// the real clock; lease and TTL subtests sleep for about a second.
func Run(t *testing.T, newStore func(t *testing.T) idempotency.Store) {
	t.Helper()
	su := &suite{
		newStore: newStore,
		ctx:      context.Background(),
		fpA:      sha256.Sum256([]byte("request A")),
		fpB:      sha256.Sum256([]byte("request B")),
		resp: &idempotency.Response{
			Status: 201,
			Header: http.Header{"Content-Type": {"application/json"}, "X-Multi": {"1", "2"}, "Location": {"/v1/charges/ch_1"}},
			Body:   []byte(`{"id":"ch_1","amount":100}`),
		},
	}
	for _, c := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"ClaimThenSecondClaimSeesInProgress", su.claimThenSecondClaimSeesInProgress},
		{"FingerprintMismatchReported", su.fingerprintMismatchReported},
		{"ConcurrentClaimsHaveOneWinner", su.concurrentClaimsHaveOneWinner},
		{"CompleteStoresResponseExactly", su.completeStoresResponseExactly},
		{"LargeAndBinaryBodies", su.largeAndBinaryBodies},
		{"LeaseExpiryLetsANewClaimIn", su.leaseExpiryLetsANewClaimIn},
		{"StaleHolderCannotCompleteOrRelease", su.staleHolderCannotCompleteOrRelease},
		{"RenewExtendsTheLease", su.renewExtendsTheLease},
		{"ReleaseLetsTheKeyBeClaimedAgain", su.releaseLetsTheKeyBeClaimedAgain},
		{"CompletedRecordCannotBeReleasedOrRecompleted", su.completedRecordCannotBeReleasedOrRecompleted},
		{"UnknownTokenIsLeaseLost", su.unknownTokenIsLeaseLost},
		{"TTLExpiry", su.tTLExpiry},
		{"KeysAreIndependent", su.keysAreIndependent},
		{"CanceledContext", su.canceledContext},
	} {
		t.Run(c.name, c.run)
	}
}

func (su *suite) claimThenSecondClaimSeesInProgress(t *testing.T) {
	s := su.newStore(t)
	k := su.key()
	c, err := s.Claim(su.ctx, k, su.fpA, time.Minute)
	require.NoError(t, err)
	require.True(t, c.Acquired)
	require.NotEmpty(t, c.Token)
	c2, err := s.Claim(su.ctx, k, su.fpA, time.Minute)
	require.NoError(t, err)
	require.False(t, c2.Acquired)
	require.NotNil(t, c2.Existing)
	assert.Equal(t, idempotency.StateInProgress, c2.Existing.State)
	assert.Equal(t, su.fpA, c2.Existing.Fingerprint)
}

func (su *suite) fingerprintMismatchReported(t *testing.T) {
	s := su.newStore(t)
	k := su.key()
	c, err := s.Claim(su.ctx, k, su.fpA, time.Minute)
	require.NoError(t, err)
	c2, err := s.Claim(su.ctx, k, su.fpB, time.Minute)
	require.NoError(t, err)
	require.False(t, c2.Acquired)
	assert.Equal(t, su.fpA, c2.Existing.Fingerprint, "the record keeps the first request's fingerprint")
	require.NoError(t, s.Complete(su.ctx, k, c.Token, su.resp, time.Minute))
	c3, err := s.Claim(su.ctx, k, su.fpB, time.Minute)
	require.NoError(t, err)
	require.False(t, c3.Acquired)
	assert.Equal(t, su.fpA, c3.Existing.Fingerprint)
	assert.Equal(t, idempotency.StateCompleted, c3.Existing.State)
}

func (su *suite) concurrentClaimsHaveOneWinner(t *testing.T) {
	s := su.newStore(t)
	k := su.key()
	const n = 64
	var won, lost atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			c, err := s.Claim(su.ctx, k, su.fpA, time.Minute)
			if !assert.NoError(t, err) {
				return
			}
			if c.Acquired {
				won.Add(1)
			} else {
				lost.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	assert.Equal(t, int64(1), won.Load())
	assert.Equal(t, int64(n-1), lost.Load())
}

func (su *suite) completeStoresResponseExactly(t *testing.T) {
	s := su.newStore(t)
	k := su.key()
	c, err := s.Claim(su.ctx, k, su.fpA, time.Minute)
	require.NoError(t, err)
	require.NoError(t, s.Complete(su.ctx, k, c.Token, su.resp, time.Minute))
	c2, err := s.Claim(su.ctx, k, su.fpA, time.Minute)
	require.NoError(t, err)
	require.False(t, c2.Acquired)
	require.Equal(t, idempotency.StateCompleted, c2.Existing.State)
	require.NotNil(t, c2.Existing.Response)
	assert.Equal(t, su.resp.Status, c2.Existing.Response.Status)
	assert.Equal(t, su.resp.Header, c2.Existing.Response.Header)
	assert.Equal(t, su.resp.Body, c2.Existing.Response.Body)
}

func (su *suite) largeAndBinaryBodies(t *testing.T) {
	s := su.newStore(t)
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	for _, body := range [][]byte{big, {}, {0, 0xff, '\n', 0}} {
		k := su.key()
		c, err := s.Claim(su.ctx, k, su.fpA, time.Minute)
		require.NoError(t, err)
		r := &idempotency.Response{Status: 200, Header: http.Header{}, Body: body}
		require.NoError(t, s.Complete(su.ctx, k, c.Token, r, time.Minute))
		c2, err := s.Claim(su.ctx, k, su.fpA, time.Minute)
		require.NoError(t, err)
		require.NotNil(t, c2.Existing.Response)
		assert.True(t, bytes.Equal(body, c2.Existing.Response.Body), "body of %d bytes replayed byte for byte", len(body))
	}
}

func (su *suite) leaseExpiryLetsANewClaimIn(t *testing.T) {
	s := su.newStore(t)
	k := su.key()
	c, err := s.Claim(su.ctx, k, su.fpA, 300*time.Millisecond)
	require.NoError(t, err)
	require.True(t, c.Acquired)
	time.Sleep(600 * time.Millisecond)
	c2, err := s.Claim(su.ctx, k, su.fpA, time.Minute)
	require.NoError(t, err)
	require.True(t, c2.Acquired, "an expired lease is taken over")
	assert.NotEqual(t, c.Token, c2.Token)
	c3, err := s.Claim(su.ctx, k, su.fpA, time.Minute)
	require.NoError(t, err)
	assert.False(t, c3.Acquired, "the new holder's lease holds")
}

func (su *suite) staleHolderCannotCompleteOrRelease(t *testing.T) {
	s := su.newStore(t)
	k := su.key()
	stale, err := s.Claim(su.ctx, k, su.fpA, 300*time.Millisecond)
	require.NoError(t, err)
	time.Sleep(600 * time.Millisecond)
	fresh, err := s.Claim(su.ctx, k, su.fpA, time.Minute)
	require.NoError(t, err)
	require.True(t, fresh.Acquired)
	staleResp := &idempotency.Response{Status: 200, Header: http.Header{}, Body: []byte("stale")}
	require.ErrorIs(t, s.Complete(su.ctx, k, stale.Token, staleResp, time.Minute), idempotency.ErrLeaseLost)
	require.ErrorIs(t, s.Release(su.ctx, k, stale.Token), idempotency.ErrLeaseLost)
	require.ErrorIs(t, s.Renew(su.ctx, k, stale.Token, time.Minute), idempotency.ErrLeaseLost)
	require.NoError(t, s.Complete(su.ctx, k, fresh.Token, su.resp, time.Minute))
	c, err := s.Claim(su.ctx, k, su.fpA, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, su.resp.Body, c.Existing.Response.Body, "the fresh holder's response is the one stored")
}

func (su *suite) renewExtendsTheLease(t *testing.T) {
	s := su.newStore(t)
	k := su.key()
	// The renewal comes 400ms into a 1.2s lease: a margin for a busy
	// machine; the claim after 1.2s finds the renewed lease.
	c, err := s.Claim(su.ctx, k, su.fpA, 1200*time.Millisecond)
	require.NoError(t, err)
	time.Sleep(400 * time.Millisecond)
	require.NoError(t, s.Renew(su.ctx, k, c.Token, 5*time.Second))
	time.Sleep(1200 * time.Millisecond)
	c2, err := s.Claim(su.ctx, k, su.fpA, time.Minute)
	require.NoError(t, err)
	assert.False(t, c2.Acquired, "the renewed lease still holds")
	require.NoError(t, s.Complete(su.ctx, k, c.Token, su.resp, time.Minute))
}

func (su *suite) releaseLetsTheKeyBeClaimedAgain(t *testing.T) {
	s := su.newStore(t)
	k := su.key()
	c, err := s.Claim(su.ctx, k, su.fpA, time.Minute)
	require.NoError(t, err)
	require.NoError(t, s.Release(su.ctx, k, c.Token))
	c2, err := s.Claim(su.ctx, k, su.fpB, time.Minute)
	require.NoError(t, err)
	assert.True(t, c2.Acquired, "a released key is free, for any request")
	assert.NotEqual(t, c.Token, c2.Token)
	require.ErrorIs(t, s.Complete(su.ctx, k, c.Token, su.resp, time.Minute), idempotency.ErrLeaseLost, "the released token is dead")
}

func (su *suite) completedRecordCannotBeReleasedOrRecompleted(t *testing.T) {
	s := su.newStore(t)
	k := su.key()
	c, err := s.Claim(su.ctx, k, su.fpA, time.Minute)
	require.NoError(t, err)
	require.NoError(t, s.Complete(su.ctx, k, c.Token, su.resp, time.Minute))
	require.ErrorIs(t, s.Release(su.ctx, k, c.Token), idempotency.ErrLeaseLost)
	other := &idempotency.Response{Status: 500, Header: http.Header{}, Body: []byte("x")}
	require.ErrorIs(t, s.Complete(su.ctx, k, c.Token, other, time.Minute), idempotency.ErrLeaseLost)
	c2, err := s.Claim(su.ctx, k, su.fpA, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, su.resp.Status, c2.Existing.Response.Status)
}

func (su *suite) unknownTokenIsLeaseLost(t *testing.T) {
	s := su.newStore(t)
	k := su.key()
	require.ErrorIs(t, s.Complete(su.ctx, k, "no-such-token", su.resp, time.Minute), idempotency.ErrLeaseLost)
	require.ErrorIs(t, s.Release(su.ctx, k, "no-such-token"), idempotency.ErrLeaseLost)
	require.ErrorIs(t, s.Renew(su.ctx, k, "no-such-token", time.Minute), idempotency.ErrLeaseLost)
}

func (su *suite) tTLExpiry(t *testing.T) {
	s := su.newStore(t)
	k := su.key()
	c, err := s.Claim(su.ctx, k, su.fpA, time.Minute)
	require.NoError(t, err)
	require.NoError(t, s.Complete(su.ctx, k, c.Token, su.resp, 300*time.Millisecond))
	c2, err := s.Claim(su.ctx, k, su.fpA, time.Minute)
	require.NoError(t, err)
	require.False(t, c2.Acquired)
	time.Sleep(600 * time.Millisecond)
	c3, err := s.Claim(su.ctx, k, su.fpB, time.Minute)
	require.NoError(t, err)
	assert.True(t, c3.Acquired, "an expired record is gone, for any request")
}

func (su *suite) keysAreIndependent(t *testing.T) {
	s := su.newStore(t)
	k1, k2 := su.key(), su.key()
	c1, err := s.Claim(su.ctx, k1, su.fpA, time.Minute)
	require.NoError(t, err)
	c2, err := s.Claim(su.ctx, k2, su.fpA, time.Minute)
	require.NoError(t, err)
	assert.True(t, c1.Acquired)
	assert.True(t, c2.Acquired)
}

func (su *suite) canceledContext(t *testing.T) {
	s := su.newStore(t)
	cctx, cancel := context.WithCancel(su.ctx)
	cancel()
	_, err := s.Claim(cctx, su.key(), su.fpA, time.Minute)
	require.Error(t, err)
	require.ErrorIs(t, err, idempotency.ErrUnavailable)
}

// RunQuota runs the key-share part of the suite, for stores implementing
// idempotency.OwnerClaimer. newStore returns a fresh, empty store in which
// one owner has room for at least one and fewer than 1000 records with a
// key of 40 bytes and no response, and less than share bytes in all (the
// suite completes a record with a share-sized body to pass it).
func RunQuota(t *testing.T, share int, newStore func(t *testing.T) idempotency.OwnerClaimer) {
	t.Helper()
	ctx := context.Background()
	fp := sha256.Sum256([]byte("request"))
	key := func() string { return "principal\x00" + uuid.NewString() }
	// fill claims keys for owner until its share is used up and returns
	// the keys and tokens it holds, and the refusal.
	fill := func(t *testing.T, s idempotency.OwnerClaimer, owner string, lease time.Duration) (keys, tokens []string, refusal error) {
		for i := 0; i < 1000; i++ {
			k := key()
			c, err := s.ClaimFor(ctx, owner, k, fp, lease)
			if err != nil {
				require.NotEmpty(t, keys, "the share holds at least one record")
				return keys, tokens, err
			}
			require.True(t, c.Acquired)
			keys, tokens = append(keys, k), append(tokens, c.Token)
		}
		t.Fatal("1000 claims of one owner never passed its share")
		return nil, nil, nil
	}

	t.Run("OwnerOverItsShareIsRefusedOthersAreNot", func(t *testing.T) {
		s := newStore(t)
		keys, _, err := fill(t, s, "key-a", time.Minute)
		require.ErrorIs(t, err, idempotency.ErrQuotaExceeded)
		require.NotErrorIs(t, err, idempotency.ErrUnavailable)
		var q *idempotency.QuotaError
		require.ErrorAs(t, err, &q)
		assert.Greater(t, q.RetryAfter, time.Duration(0))
		assert.LessOrEqual(t, q.RetryAfter, time.Minute, "until the earliest lease ends")

		c, err := s.ClaimFor(ctx, "key-a", keys[0], fp, time.Minute)
		require.NoError(t, err, "a key with a live record still gets that record")
		require.False(t, c.Acquired)
		require.NotNil(t, c.Existing)

		c, err = s.ClaimFor(ctx, "key-b", key(), fp, time.Minute)
		require.NoError(t, err, "another owner is unaffected")
		require.True(t, c.Acquired)
	})

	t.Run("ReleaseFreesTheShare", func(t *testing.T) {
		s := newStore(t)
		keys, tokens, err := fill(t, s, "key-a", time.Minute)
		require.ErrorIs(t, err, idempotency.ErrQuotaExceeded)
		require.NoError(t, s.(idempotency.Store).Release(ctx, keys[0], tokens[0]))
		c, err := s.ClaimFor(ctx, "key-a", key(), fp, time.Minute)
		require.NoError(t, err)
		require.True(t, c.Acquired)
	})

	t.Run("ExpiryFreesTheShare", func(t *testing.T) {
		s := newStore(t)
		_, _, err := fill(t, s, "key-a", 300*time.Millisecond)
		var q *idempotency.QuotaError
		require.ErrorAs(t, err, &q)
		assert.LessOrEqual(t, q.RetryAfter, 300*time.Millisecond)
		time.Sleep(500 * time.Millisecond)
		c, err := s.ClaimFor(ctx, "key-a", key(), fp, time.Minute)
		require.NoError(t, err, "room again once the records expire")
		require.True(t, c.Acquired)
	})

	t.Run("CompletionPastTheShareIsRefused", func(t *testing.T) {
		s := newStore(t)
		k := key()
		c, err := s.ClaimFor(ctx, "key-a", k, fp, time.Minute)
		require.NoError(t, err)
		err = s.(idempotency.Store).Complete(ctx, k, c.Token, &idempotency.Response{Status: 200, Body: make([]byte, share)}, time.Minute)
		require.ErrorIs(t, err, idempotency.ErrQuotaExceeded)
		c2, err := s.ClaimFor(ctx, "key-b", key(), fp, time.Minute)
		require.NoError(t, err, "another owner is unaffected")
		require.True(t, c2.Acquired)
	})
}
