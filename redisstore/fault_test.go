package redisstore_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/redisstore"
	"github.com/replayguard/replayguard/redisstore/goredis"
	"github.com/replayguard/replayguard/redisstore/redistest"
)

const faultTimeout = 100 * time.Millisecond

// outcome tallies what a store answered under load.
type outcome struct {
	ok, replayed, unavailable atomic.Int64
	violations                atomic.Int64
	slowest                   atomic.Int64 // nanoseconds
}

// loadUntil runs workers that each send fresh entries and replays of the
// entries accepted earlier (before the fault, they must stay rejected), until
// stop is closed. A fresh entry must never be a replay, a replay never
// accepted, and no call may take much longer than the timeout.
func loadUntil(t *testing.T, s nonce.Store, stop <-chan struct{}, accepted []nonce.Entry, out *outcome, tag string) {
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var e nonce.Entry
				replay := i%2 == 1 && len(accepted) > 0
				if replay {
					e = accepted[(w*7919+i)%len(accepted)]
				} else {
					now := time.Now()
					e = nonce.Entry{Scope: "k", Key: fmt.Sprintf("%s-%d-%d", tag, w, i), Timestamp: now, Expires: now.Add(time.Minute)}
				}
				start := time.Now()
				err := s.Add(context.Background(), e)
				if d := int64(time.Since(start)); d > out.slowest.Load() {
					out.slowest.Store(d)
				}
				switch {
				case err == nil:
					out.ok.Add(1)
					if replay {
						out.violations.Add(1)
						t.Errorf("replay of %s accepted", e.Key)
					}
				case errors.Is(err, nonce.ErrReplayed):
					out.replayed.Add(1)
					if !replay {
						out.violations.Add(1)
						t.Errorf("fresh %s reported replayed", e.Key)
					}
				case errors.Is(err, nonce.ErrUnavailable):
					out.unavailable.Add(1)
				default:
					out.violations.Add(1)
					t.Errorf("unexpected error %v", err)
				}
				if err != nil {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	<-stop
	wg.Wait()
}

// Redis killed under load and restarted (appendfsync always): while it is
// down every call fails within the timeout with nonce.ErrUnavailable; no
// fresh entry is called a replay and no entry accepted before the kill is
// accepted again, during the outage or after the restart; service resumes
// without a new client once Redis is back.
func TestKillUnderLoad(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"exact", "bloom"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t, redistest.WithPersistence())
			c := newClient(t, faultTimeout, srv.Addr())
			var s nonce.Store = redisstore.NewNonce(c, redisstore.WithTimeout(faultTimeout))
			if mode == "bloom" {
				b, err := redisstore.NewBloomNonce(c, 1_000_000, 1e-9, 10*time.Minute, redisstore.WithTimeout(faultTimeout))
				require.NoError(t, err)
				s = b
			}
			ctx := context.Background()
			var accepted []nonce.Entry
			for i := 0; i < 200; i++ {
				now := time.Now()
				e := nonce.Entry{Scope: "k", Key: "before-" + strconv.Itoa(i), Timestamp: now, Expires: now.Add(time.Minute)}
				err := s.Add(ctx, e)
				for errors.Is(err, nonce.ErrUnavailable) { // an fsync on a busy disk may outlast the short timeout
					err = s.Add(ctx, nonce.Entry{Scope: e.Scope, Key: e.Key + "-again", Timestamp: e.Timestamp, Expires: e.Expires})
					e.Key += "-again"
				}
				require.NoError(t, err)
				accepted = append(accepted, e)
			}

			var out outcome
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() { loadUntil(t, s, stop, accepted, &out, mode); close(done) }()
			time.Sleep(300 * time.Millisecond)
			srv.Kill()
			killedAt := time.Now()
			okAtKill := out.ok.Load()
			time.Sleep(600 * time.Millisecond)
			down := out.unavailable.Load()
			assert.Positive(t, down, "calls fail while Redis is down")
			assert.LessOrEqual(t, out.ok.Load()-okAtKill, int64(16), "nothing is accepted while Redis is down, beyond calls in flight at the kill")

			srv.Restart()
			restartedAt := time.Now()
			okAtRestart := out.ok.Load()
			var recovered time.Duration
			for recovered == 0 && time.Since(restartedAt) < 5*time.Second {
				if out.ok.Load() > okAtRestart {
					recovered = time.Since(restartedAt)
				}
				time.Sleep(5 * time.Millisecond)
			}
			require.NotZero(t, recovered, "service resumes after the restart")
			time.Sleep(300 * time.Millisecond)
			close(stop)
			<-done
			t.Logf("%s: outage %v, %d calls unavailable, recovered %v after the restart, slowest call %v; %d accepted, %d replays rejected",
				mode, restartedAt.Sub(killedAt).Round(time.Millisecond), down, recovered.Round(time.Millisecond),
				time.Duration(out.slowest.Load()).Round(time.Millisecond), out.ok.Load(), out.replayed.Load())
			assert.Zero(t, out.violations.Load())
			assert.Less(t, time.Duration(out.slowest.Load()), faultTimeout+400*time.Millisecond, "no call waits much past redis.timeout")
			assert.Less(t, recovered, 2*time.Second)
			for _, e := range accepted {
				err := s.Add(ctx, e)
				for errors.Is(err, nonce.ErrUnavailable) { // fsync on every write may outlast the short timeout
					err = s.Add(ctx, e)
				}
				require.ErrorIs(t, err, nonce.ErrReplayed, "accepted before the kill, rejected after the restart")
			}
			clients, err := strconv.Atoi(srv.Info("connected_clients"))
			require.NoError(t, err)
			assert.LessOrEqual(t, clients, 10*runtime.GOMAXPROCS(0)+1, "connections stay within the pool")
		})
	}
}

// An idempotency record written with appendfsync always survives a kill,
// and a Claim while Redis is down is unavailable, never acquired.
func TestIdempotencyAcrossKill(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.WithPersistence())
	s := redisstore.NewIdempotency(newClient(t, faultTimeout, srv.Addr()), redisstore.WithTimeout(faultTimeout))
	ctx := context.Background()
	fp := sha256.Sum256([]byte("r"))
	c, err := s.Claim(ctx, "p\x00op", fp, time.Minute)
	require.NoError(t, err)
	require.NoError(t, s.Complete(ctx, "p\x00op", c.Token, &idempotency.Response{Status: 201, Body: []byte("done")}, time.Hour))
	srv.Kill()
	_, err = s.Claim(ctx, "p\x00op", fp, time.Minute)
	require.ErrorIs(t, err, idempotency.ErrUnavailable)
	require.ErrorIs(t, s.Ping(ctx), idempotency.ErrUnavailable)
	srv.Restart()
	require.Eventually(t, func() bool { return s.Ping(ctx) == nil }, 3*time.Second, 10*time.Millisecond)
	c, err = s.Claim(ctx, "p\x00op", fp, time.Minute)
	require.NoError(t, err)
	require.False(t, c.Acquired)
	assert.Equal(t, []byte("done"), c.Existing.Response.Body)
}

// Closing the client after an outage leaves no goroutine behind.
func TestNoGoroutineLeak(t *testing.T) {
	srv := redistest.Start(t)
	before := runtime.NumGoroutine()
	c, err := goredis.New(clientConfig(faultTimeout, srv.Addr()))
	require.NoError(t, err)
	n := redisstore.NewNonce(c, redisstore.WithTimeout(faultTimeout))
	b, err := redisstore.NewBloomNonce(c, 10_000, 1e-9, time.Minute, redisstore.WithTimeout(faultTimeout))
	require.NoError(t, err)
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				now := time.Now()
				e := nonce.Entry{Scope: "k", Key: fmt.Sprintf("leak-%d-%d", w, i), Timestamp: now, Expires: now.Add(time.Minute)}
				_ = n.Add(ctx, e)
				_ = b.Add(ctx, e)
				if w == 0 && i == 25 {
					srv.Kill()
				}
			}
		}()
	}
	wg.Wait()
	srv.Restart()
	require.Eventually(t, func() bool { return n.Ping(ctx) == nil }, 3*time.Second, 10*time.Millisecond)
	require.NoError(t, c.Close())
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines: %d before, %d after Close:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}
