package idempotency_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/idempotency"
)

// counted returns fn, which counts its runs and returns value, and the counter.
func counted(value string) (func(context.Context) ([]byte, error), *atomic.Int64) {
	var n atomic.Int64
	return func(context.Context) ([]byte, error) {
		n.Add(1)
		return []byte(value), nil
	}, &n
}

func TestDoRunsOncePerKey(t *testing.T) {
	ctx := context.Background()
	r := idempotency.NewRunner(idempotency.NewMemory())
	fn, runs := counted("applied")

	res, err := r.Do(ctx, "msg-1", fn)
	require.NoError(t, err)
	assert.Equal(t, idempotency.Result{Value: []byte("applied")}, res)

	res, err = r.Do(ctx, "msg-1", fn)
	require.NoError(t, err)
	assert.Equal(t, idempotency.Result{Value: []byte("applied"), Replayed: true}, res)
	assert.EqualValues(t, 1, runs.Load())

	res, err = r.Do(ctx, "msg-2", fn)
	require.NoError(t, err)
	assert.False(t, res.Replayed)
	assert.EqualValues(t, 2, runs.Load())
}

func TestDoEmptyValue(t *testing.T) {
	ctx := context.Background()
	r := idempotency.NewRunner(idempotency.NewMemory())
	var runs atomic.Int64
	fn := func(context.Context) ([]byte, error) { runs.Add(1); return nil, nil }

	_, err := r.Do(ctx, "k", fn)
	require.NoError(t, err)
	res, err := r.Do(ctx, "k", fn)
	require.NoError(t, err)
	assert.True(t, res.Replayed)
	assert.Empty(t, res.Value)
	assert.EqualValues(t, 1, runs.Load())
}

func TestDoConcurrentAcrossRunners(t *testing.T) {
	const n = 20
	store := idempotency.NewMemory()
	// Two runners over one store model two consumer processes.
	runners := []*idempotency.Runner{
		idempotency.NewRunner(store, idempotency.WithPollInterval(5*time.Millisecond)),
		idempotency.NewRunner(store, idempotency.WithPollInterval(5*time.Millisecond)),
	}
	var runs atomic.Int64
	fn := func(context.Context) ([]byte, error) {
		v := runs.Add(1)
		time.Sleep(50 * time.Millisecond)
		return fmt.Appendf(nil, "result-%d", v), nil
	}

	results := make([]idempotency.Result, n)
	errs := make([]error, n)
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-gate
			results[i], errs[i] = runners[i%2].Do(context.Background(), "order-7", fn)
		})
	}
	close(gate)
	wg.Wait()

	assert.EqualValues(t, 1, runs.Load())
	fresh := 0
	for i := range n {
		require.NoError(t, errs[i])
		assert.Equal(t, "result-1", string(results[i].Value))
		if !results[i].Replayed {
			fresh++
		}
	}
	assert.Equal(t, 1, fresh)
}

func TestDoErrorStoresNothing(t *testing.T) {
	ctx := context.Background()
	store := idempotency.NewMemory()
	r := idempotency.NewRunner(store)
	errApply := errors.New("ledger: temporarily locked")
	var runs atomic.Int64
	fn := func(context.Context) ([]byte, error) {
		if runs.Add(1) == 1 {
			return nil, errApply
		}
		return []byte("ok"), nil
	}

	_, err := r.Do(ctx, "msg-1", fn)
	require.ErrorIs(t, err, errApply)
	assert.Zero(t, store.Len())

	res, err := r.Do(ctx, "msg-1", fn)
	require.NoError(t, err)
	assert.Equal(t, idempotency.Result{Value: []byte("ok")}, res)

	res, err = r.Do(ctx, "msg-1", fn)
	require.NoError(t, err)
	assert.True(t, res.Replayed)
	assert.EqualValues(t, 2, runs.Load())
}

func TestDoPanicReleasesKey(t *testing.T) {
	ctx := context.Background()
	store := idempotency.NewMemory()
	r := idempotency.NewRunner(store)
	assert.PanicsWithValue(t, "apply bug", func() {
		_, _ = r.Do(ctx, "msg-1", func(context.Context) ([]byte, error) { panic("apply bug") })
	})
	assert.Zero(t, store.Len())

	fn, runs := counted("ok")
	res, err := r.Do(ctx, "msg-1", fn)
	require.NoError(t, err)
	assert.False(t, res.Replayed)
	assert.EqualValues(t, 1, runs.Load())
}

func TestDoWithoutWaiting(t *testing.T) {
	ctx := context.Background()
	store := idempotency.NewMemory()
	held, err := store.Claim(ctx, "msg-1", idempotency.Fingerprint{}, time.Minute)
	require.NoError(t, err)
	require.True(t, held.Acquired)

	r := idempotency.NewRunner(store, idempotency.WithoutWaiting())
	fn, runs := counted("v")
	_, err = r.Do(ctx, "msg-1", fn)
	require.ErrorIs(t, err, idempotency.ErrInProgress)
	assert.Zero(t, runs.Load())

	require.NoError(t, store.Complete(ctx, "msg-1", held.Token, &idempotency.Response{Body: []byte("first")}, time.Minute))
	res, err := r.Do(ctx, "msg-1", fn)
	require.NoError(t, err)
	assert.Equal(t, idempotency.Result{Value: []byte("first"), Replayed: true}, res)
	assert.Zero(t, runs.Load())
}

func TestDoWaitTimesOut(t *testing.T) {
	store := idempotency.NewMemory()
	_, err := store.Claim(context.Background(), "msg-1", idempotency.Fingerprint{}, time.Minute)
	require.NoError(t, err)

	// Claims retry at about 0, 10, 30, 70 and 150ms, then 310ms: the
	// deadline falls well inside a pause.
	r := idempotency.NewRunner(store, idempotency.WithPollInterval(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 230*time.Millisecond)
	defer cancel()
	fn, runs := counted("v")
	_, err = r.Do(ctx, "msg-1", fn)
	require.ErrorIs(t, err, idempotency.ErrInProgress)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Zero(t, runs.Load())
}

func TestDoWaitsForHolderResult(t *testing.T) {
	store := idempotency.NewMemory()
	a := idempotency.NewRunner(store)
	b := idempotency.NewRunner(store, idempotency.WithPollInterval(10*time.Millisecond))
	started := make(chan struct{})
	release := make(chan struct{})

	var wg sync.WaitGroup
	var first idempotency.Result
	var firstErr error
	wg.Go(func() {
		first, firstErr = a.Do(context.Background(), "msg-1", func(context.Context) ([]byte, error) {
			close(started)
			<-release
			return []byte("from a"), nil
		})
	})
	<-started

	var second idempotency.Result
	var secondErr error
	wg.Go(func() {
		second, secondErr = b.Do(context.Background(), "msg-1", func(context.Context) ([]byte, error) {
			return []byte("from b"), nil
		})
	})
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()

	require.NoError(t, firstErr)
	require.NoError(t, secondErr)
	assert.Equal(t, idempotency.Result{Value: []byte("from a")}, first)
	assert.Equal(t, idempotency.Result{Value: []byte("from a"), Replayed: true}, second)
}

func TestDoTakesOverDeadHolder(t *testing.T) {
	const lease = 150 * time.Millisecond
	store := idempotency.NewMemory()
	begin := time.Now()
	// A holder that claims and dies without completing or releasing.
	dead, err := store.Claim(context.Background(), "msg-1", idempotency.Fingerprint{}, lease)
	require.NoError(t, err)
	require.True(t, dead.Acquired)

	r := idempotency.NewRunner(store, idempotency.WithPollInterval(20*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fn, runs := counted("recovered")
	res, err := r.Do(ctx, "msg-1", fn)
	require.NoError(t, err)
	assert.Equal(t, idempotency.Result{Value: []byte("recovered")}, res)
	assert.EqualValues(t, 1, runs.Load())
	assert.GreaterOrEqual(t, time.Since(begin), lease, "no takeover while the lease lives")

	err = store.Complete(context.Background(), "msg-1", dead.Token, &idempotency.Response{Body: []byte("stale")}, time.Minute)
	require.ErrorIs(t, err, idempotency.ErrLeaseLost, "the dead holder's token is fenced off")
	res, err = r.Do(ctx, "msg-1", fn)
	require.NoError(t, err)
	assert.Equal(t, idempotency.Result{Value: []byte("recovered"), Replayed: true}, res)
}

func TestDoRenewsLeaseWhileRunning(t *testing.T) {
	store := idempotency.NewMemory()
	r := idempotency.NewRunner(store, idempotency.WithLease(90*time.Millisecond))
	started := make(chan struct{})
	var wg sync.WaitGroup
	var firstErr error
	wg.Go(func() {
		_, firstErr = r.Do(context.Background(), "msg-1", func(context.Context) ([]byte, error) {
			close(started)
			time.Sleep(250 * time.Millisecond)
			return []byte("slow"), nil
		})
	})
	<-started
	time.Sleep(150 * time.Millisecond)

	fn, runs := counted("v")
	_, err := idempotency.NewRunner(store, idempotency.WithoutWaiting()).Do(context.Background(), "msg-1", fn)
	require.ErrorIs(t, err, idempotency.ErrInProgress, "the lease was renewed: no takeover")
	wg.Wait()
	require.NoError(t, firstErr)
	assert.Zero(t, runs.Load())
}

func TestDoEmptyKey(t *testing.T) {
	r := idempotency.NewRunner(idempotency.NewMemory())
	fn, runs := counted("v")
	_, err := r.Do(context.Background(), "", fn)
	require.ErrorIs(t, err, idempotency.ErrKeyMissing)
	assert.Zero(t, runs.Load())
}

func TestDoStoreFailure(t *testing.T) {
	ctx := context.Background()

	t.Run("claim", func(t *testing.T) {
		r := idempotency.NewRunner(&faultyStore{Memory: idempotency.NewMemory(), claim: errDown})
		fn, runs := counted("v")
		_, err := r.Do(ctx, "msg-1", fn)
		require.ErrorIs(t, err, idempotency.ErrUnavailable)
		assert.Zero(t, runs.Load())
	})

	t.Run("complete", func(t *testing.T) {
		r := idempotency.NewRunner(&faultyStore{Memory: idempotency.NewMemory(), complete: errDown})
		fn, runs := counted("v")
		res, err := r.Do(ctx, "msg-1", fn)
		require.ErrorIs(t, err, idempotency.ErrUnavailable)
		assert.Equal(t, []byte("v"), res.Value, "fn ran: its value is returned with the error")
		assert.EqualValues(t, 1, runs.Load())
	})

	t.Run("release after fn error", func(t *testing.T) {
		r := idempotency.NewRunner(&faultyStore{Memory: idempotency.NewMemory(), release: errDown})
		errApply := errors.New("apply failed")
		_, err := r.Do(ctx, "msg-1", func(context.Context) ([]byte, error) { return nil, errApply })
		require.ErrorIs(t, err, errApply)
		require.ErrorIs(t, err, idempotency.ErrUnavailable)
	})
}

func TestDoTTL(t *testing.T) {
	ctx := context.Background()
	r := idempotency.NewRunner(idempotency.NewMemory(), idempotency.WithTTL(50*time.Millisecond))
	fn, runs := counted("v")
	_, err := r.Do(ctx, "msg-1", fn)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		res, err := r.Do(ctx, "msg-1", fn)
		return err == nil && !res.Replayed
	}, 2*time.Second, 10*time.Millisecond)
	assert.EqualValues(t, 2, runs.Load())
}

func ExampleRunner_Do() {
	runner := idempotency.NewRunner(idempotency.NewMemory())
	ctx := context.Background()
	balance := 0
	credit := func(context.Context) ([]byte, error) {
		balance += 100
		return fmt.Appendf(nil, "balance %d", balance), nil
	}

	// At-least-once delivery: msg-1 arrives twice.
	for _, id := range []string{"msg-1", "msg-1", "msg-2"} {
		res, err := runner.Do(ctx, id, credit)
		if err != nil {
			fmt.Println("retry later:", err)
			continue
		}
		fmt.Printf("%s: %s (replayed %t)\n", id, res.Value, res.Replayed)
	}

	if _, err := runner.Do(ctx, "", credit); errors.Is(err, idempotency.ErrKeyMissing) {
		fmt.Println("rejected:", err)
	}
	// Output:
	// msg-1: balance 100 (replayed false)
	// msg-1: balance 100 (replayed true)
	// msg-2: balance 200 (replayed false)
	// rejected: idempotency: key missing
}
