package idempotency

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Runner runs functions at most once per key across every process sharing
// its Store: exactly-once processing on top of at-least-once delivery.
type Runner struct {
	store Store
	ttl   time.Duration
	lease time.Duration
	wait  bool
	poll  time.Duration
}

// RunnerOption configures a Runner.
type RunnerOption func(*Runner)

// WithTTL sets how long a result is kept. Default 24h.
func WithTTL(d time.Duration) RunnerOption { return func(r *Runner) { r.ttl = d } }

// WithLease sets the lease of a running function, renewed while it runs.
// Default 30s.
func WithLease(d time.Duration) RunnerOption { return func(r *Runner) { r.lease = d } }

// WithoutWaiting makes Do return ErrInProgress at once when another holder
// runs the key, instead of waiting for its result (default: wait).
func WithoutWaiting() RunnerOption { return func(r *Runner) { r.wait = false } }

// WithPollInterval sets the longest pause between checks while waiting for
// another holder. Default 500ms.
func WithPollInterval(d time.Duration) RunnerOption { return func(r *Runner) { r.poll = d } }

// NewRunner returns a Runner over store.
func NewRunner(store Store, opts ...RunnerOption) *Runner {
	r := &Runner{store: store, ttl: DefaultTTL, lease: DefaultLease, wait: true, poll: 500 * time.Millisecond}
	for _, o := range opts {
		o(r)
	}
	if r.ttl <= 0 {
		r.ttl = DefaultTTL
	}
	if r.lease <= 0 {
		r.lease = DefaultLease
	}
	if r.poll < time.Millisecond {
		r.poll = time.Millisecond
	}
	return r
}

// Result is what Do returns.
type Result struct {
	// Value is fn's result, or the stored result of an earlier run.
	Value []byte
	// Replayed reports that fn did not run here: the value is stored.
	Replayed bool
}

// Do runs fn at most once for key. A duplicate gets the stored result of
// the first successful run. When fn returns an error nothing is stored and
// the key is freed, so a redelivery runs it again. While another holder
// runs the key, Do waits for its result (or for its lease to lapse, then
// runs fn itself) until ctx is done, unless WithoutWaiting was given.
func (r *Runner) Do(ctx context.Context, key string, fn func(ctx context.Context) ([]byte, error)) (Result, error) {
	if key == "" {
		return Result{}, ErrKeyMissing
	}
	pause := 10 * time.Millisecond
	for waited := false; ; waited = true {
		claim, err := r.store.Claim(ctx, key, Fingerprint{}, r.lease)
		if err != nil {
			if waited && ctx.Err() != nil {
				return Result{}, fmt.Errorf("%w: %w", ErrInProgress, ctx.Err())
			}
			return Result{}, err
		}
		if claim.Acquired {
			return r.run(ctx, key, claim.Token, fn)
		}
		rec := claim.Existing
		if rec != nil && rec.State == StateCompleted && rec.Response != nil {
			return Result{Value: rec.Response.Body, Replayed: true}, nil
		}
		if !r.wait {
			return Result{}, ErrInProgress
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return Result{}, fmt.Errorf("%w: %w", ErrInProgress, ctx.Err())
		case <-t.C:
		}
		if pause = 2 * pause; pause > r.poll {
			pause = r.poll
		}
	}
}

func (r *Runner) run(ctx context.Context, key, token string, fn func(context.Context) ([]byte, error)) (Result, error) {
	storeCtx := context.WithoutCancel(ctx)
	stop := renewLoop(storeCtx, r.store, key, token, r.lease, func(error) {})
	done := false
	defer func() {
		stop()
		if !done {
			_ = r.store.Release(storeCtx, key, token)
		}
	}()
	v, err := fn(ctx)
	done = true
	stop()
	if err != nil {
		if rerr := r.store.Release(storeCtx, key, token); rerr != nil {
			return Result{}, errors.Join(err, rerr)
		}
		return Result{}, err
	}
	if err := r.store.Complete(storeCtx, key, token, &Response{Body: v}, r.ttl); err != nil {
		// fn ran; its effect stands. Report that the result could not be
		// recorded, so the caller can decide (the value is returned too).
		return Result{Value: v}, fmt.Errorf("idempotency: result not recorded: %w", err)
	}
	return Result{Value: v}, nil
}
