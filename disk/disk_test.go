package disk

import (
	"context"
	"crypto/sha256"
	"net/http"
	"os"
	"path/filepath"
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
)

func open(t *testing.T, dir string, opts ...Option) *DB {
	t.Helper()
	db, err := Open(dir, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestNonceConformance(t *testing.T) {
	noncetest.Run(t, func(t *testing.T) nonce.Store { return open(t, t.TempDir()).Nonces() })
}

func TestIdempotencyConformance(t *testing.T) {
	idempotencytest.Run(t, func(t *testing.T) idempotency.Store { return open(t, t.TempDir()).Records() })
	idempotencytest.RunNonceClaimer(t, func(t *testing.T) idempotency.NonceClaimer { return open(t, t.TempDir()).Records() })
}

func TestConformanceWithoutFsync(t *testing.T) {
	noncetest.Run(t, func(t *testing.T) nonce.Store { return open(t, t.TempDir(), WithFsync(false)).Nonces() })
	idempotencytest.Run(t, func(t *testing.T) idempotency.Store {
		return open(t, t.TempDir(), WithFsync(false)).Records()
	})
}

// TestNonceQuota gives an owner the room of share nonces of the suite's
// shape (scope "key-a", a UUID key).
func TestNonceQuota(t *testing.T) {
	const share = 20
	cost := nonceCost(nonceKey("key-a", uuid.NewString()))
	noncetest.RunQuota(t, share, func(t *testing.T) nonce.Store {
		return open(t, t.TempDir(), WithKeyShare(share*cost)).Nonces()
	})
}

func TestIdempotencyQuota(t *testing.T) {
	const records = 20
	rec := record{state: idempotency.StateInProgress, token: idempotency.NewToken()}
	cost := entryCost(len("principal\x00"+uuid.NewString()), len(rec.encode()))
	idempotencytest.RunQuota(t, int(records*cost), func(t *testing.T) idempotency.OwnerClaimer {
		return open(t, t.TempDir(), WithKeyShare(records*cost)).Records()
	})
}

// TestSharesCoverNoncesAndRecords: one owner's nonces and records draw
// on one share.
func TestSharesCoverNoncesAndRecords(t *testing.T) {
	ctx := context.Background()
	key := nonceKey("key-a", uuid.NewString())
	db := open(t, t.TempDir(), WithKeyShare(3*nonceCost(key)))
	n, r := db.Nonces(), db.Records()
	now := time.Now()
	for i := 0; i < 2; i++ {
		require.NoError(t, n.Add(ctx, nonce.Entry{Scope: "key-a", Owner: "key-a", Key: uuid.NewString(), Expires: now.Add(time.Minute)}))
	}
	_, err := r.ClaimFor(ctx, "key-a", "principal\x00"+uuid.NewString(), sha256.Sum256(nil), time.Minute)
	require.ErrorIs(t, err, idempotency.ErrQuotaExceeded, "a claim does not fit beside two nonces")
	c, err := r.ClaimFor(ctx, "key-b", "principal\x00"+uuid.NewString(), sha256.Sum256(nil), time.Minute)
	require.NoError(t, err)
	require.True(t, c.Acquired)
}

// TestEverythingSurvivesReopen: nonces, in-progress and completed records
// are read back from the file by a new store.
func TestEverythingSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := Open(dir)
	require.NoError(t, err)
	now := time.Now()
	e := nonce.Entry{Scope: "k", Key: "nonce-1", Expires: now.Add(time.Hour)}
	require.NoError(t, db.Nonces().Add(ctx, e))
	fp := sha256.Sum256([]byte("req"))
	done, err := db.Records().Claim(ctx, "k\x00done", fp, time.Minute)
	require.NoError(t, err)
	resp := &idempotency.Response{Status: 201, Header: http.Header{"Content-Type": {"application/json"}, "X-Multi": {"1", "2"}},
		Body: []byte{0, 1, 2, 0xff, '\n'}}
	require.NoError(t, db.Records().Complete(ctx, "k\x00done", done.Token, resp, time.Hour))
	running, err := db.Records().Claim(ctx, "k\x00running", fp, 300*time.Millisecond)
	require.NoError(t, err)
	require.True(t, running.Acquired)
	require.NoError(t, db.Close())

	db = open(t, dir)
	require.ErrorIs(t, db.Nonces().Add(ctx, e), nonce.ErrReplayed)
	c, err := db.Records().Claim(ctx, "k\x00done", fp, time.Minute)
	require.NoError(t, err)
	require.False(t, c.Acquired)
	require.Equal(t, idempotency.StateCompleted, c.Existing.State)
	assert.Equal(t, resp, c.Existing.Response, "the stored response byte for byte")
	c, err = db.Records().Claim(ctx, "k\x00running", fp, time.Minute)
	require.NoError(t, err)
	require.False(t, c.Acquired, "an in-progress record keeps its lease across the restart")
	require.Equal(t, idempotency.StateInProgress, c.Existing.State)
	time.Sleep(400 * time.Millisecond)
	c, err = db.Records().Claim(ctx, "k\x00running", fp, time.Minute)
	require.NoError(t, err)
	require.True(t, c.Acquired, "available once its lease ended")
	require.ErrorIs(t, db.Records().Complete(ctx, "k\x00running", running.Token, resp, time.Hour), idempotency.ErrLeaseLost,
		"the holder from before the restart is fenced off")
}

// TestReaperReclaimsExpiredEntries: entries past their expiry are removed
// and their bytes credited; live ones stay.
func TestReaperReclaimsExpiredEntries(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	db := open(t, t.TempDir(), WithClock(now), WithReapInterval(20*time.Millisecond), WithKeyShare(1<<30))
	for i := 0; i < 3000; i++ {
		require.NoError(t, db.Nonces().Add(ctx, nonce.Entry{Scope: "k", Owner: "key-a", Key: uuid.NewString(), Expires: clock.Add(time.Second)}))
	}
	keep := nonce.Entry{Scope: "k", Owner: "key-b", Key: "kept", Expires: clock.Add(time.Hour)}
	require.NoError(t, db.Nonces().Add(ctx, keep))
	c, err := db.Records().ClaimFor(ctx, "key-a", "k\x00rec", sha256.Sum256(nil), time.Second)
	require.NoError(t, err)
	require.NoError(t, db.Records().Complete(ctx, "k\x00rec", c.Token, &idempotency.Response{Status: 200, Body: make([]byte, 4096)}, time.Second))
	require.Greater(t, db.Stats().LiveBytes, 3000*nonceCost(nonceKey("k", uuid.NewString())))

	mu.Lock()
	clock = clock.Add(2 * time.Second)
	mu.Unlock()
	keepCost := entryCost(len(nonceKey(keep.Scope, keep.Key)), 0)
	require.Eventually(t, func() bool { return db.Stats().LiveBytes == keepCost }, 10*time.Second, 10*time.Millisecond)
	assert.EqualValues(t, 3001, db.Stats().Reclaimed)
	require.ErrorIs(t, db.Nonces().Add(ctx, keep), nonce.ErrReplayed, "the live nonce stays")
	var left int
	require.NoError(t, scan(db.pdb, []byte{prefixEntry}, []byte{prefixEntry + 1}, func(k, v []byte) error {
		left++
		return nil
	}))
	assert.Equal(t, 1, left, "the kept nonce alone")
}

// TestFullStoreIsUnavailable: past MaxBytes new entries fail as
// unavailable, never evicting a live one, and Ping fails.
func TestFullStoreIsUnavailable(t *testing.T) {
	ctx := context.Background()
	key := nonceKey("k", uuid.NewString())
	db := open(t, t.TempDir(), WithMaxBytes(5*nonceCost(key)))
	var first nonce.Entry
	for i := 0; i < 5; i++ {
		e := nonce.Entry{Scope: "k", Key: uuid.NewString(), Expires: time.Now().Add(time.Hour)}
		if i == 0 {
			first = e
		}
		require.NoError(t, db.Nonces().Add(ctx, e))
	}
	err := db.Nonces().Add(ctx, nonce.Entry{Scope: "k", Key: uuid.NewString(), Expires: time.Now().Add(time.Hour)})
	require.ErrorIs(t, err, nonce.ErrUnavailable)
	require.ErrorIs(t, err, ErrFull)
	require.ErrorIs(t, db.Nonces().Add(ctx, first), nonce.ErrReplayed, "nothing live was evicted")
	_, err = db.Records().Claim(ctx, "k\x00x", sha256.Sum256(nil), time.Minute)
	require.ErrorIs(t, err, idempotency.ErrUnavailable)
	require.ErrorIs(t, db.Ping(ctx), ErrFull)
}

// TestReopenInProcessWaitsForClose: a second Open of a directory waits
// until the first store closed, and gives up after the lock timeout.
func TestReopenInProcessWaitsForClose(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir)
	require.NoError(t, err)

	_, err = Open(dir, WithLockTimeout(100*time.Millisecond))
	require.ErrorIs(t, err, ErrLocked)

	opened := make(chan *DB)
	go func() {
		db2, err := Open(dir, WithLockTimeout(10*time.Second))
		assert.NoError(t, err)
		opened <- db2
	}()
	select {
	case <-opened:
		t.Fatal("opened while the first store was open")
	case <-time.After(200 * time.Millisecond):
	}
	require.NoError(t, db.Close())
	db2 := <-opened
	require.NotNil(t, db2)
	require.NoError(t, db2.Close())
}

// TestClosedStoreFails: calls after Close fail as unavailable.
func TestClosedStoreFails(t *testing.T) {
	db, err := Open(t.TempDir())
	require.NoError(t, err)
	require.NoError(t, db.Close())
	err = db.Nonces().Add(context.Background(), nonce.Entry{Scope: "k", Key: "n", Expires: time.Now().Add(time.Minute)})
	require.ErrorIs(t, err, nonce.ErrUnavailable)
	require.ErrorIs(t, err, ErrClosed)
	require.NoError(t, db.Close(), "Close twice")
}

// TestNewDirectoryIsPrivate: the directory and its files hold stored
// bodies and are the owner's alone.
func TestNewDirectoryIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	db := open(t, dir)
	require.NoError(t, db.Nonces().Add(context.Background(), nonce.Entry{Scope: "k", Key: "n", Expires: time.Now().Add(time.Hour)}))
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
	names, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.NotEmpty(t, names)
	for _, e := range names {
		fi, err := e.Info()
		require.NoError(t, err)
		if fi.Mode().IsRegular() && e.Name() != "LOCK" {
			assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), e.Name())
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(record{state: idempotency.StateCompleted, token: "t", status: 200, header: idempotency.AppendHeader(nil, http.Header{"A": {"b"}}), body: []byte("x")}.encode())
	f.Add(record{state: idempotency.StateInProgress, token: idempotency.NewToken()}.encode())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, v []byte) {
		r, err := decodeRecord(v)
		if err != nil {
			return
		}
		if _, err := r.snapshot(); err != nil {
			return
		}
		again, err := decodeRecord(r.encode())
		require.NoError(t, err)
		require.Equal(t, r.token, again.token)
		require.Equal(t, r.expires, again.expires)
		require.Equal(t, r.body, again.body)
	})
}

// nonceCost is what a nonce of scoped key key counts against the bounds.
func nonceCost(key []byte) int64 { return entryCost(len(key), 0) }
