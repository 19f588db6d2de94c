package replayguard

import (
	"context"
	"errors"
	"time"

	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/nonce"
)

// Observer receives what the pipeline does, for metrics. Package metrics
// implements it with Prometheus; methods must be safe for concurrent use
// and fast.
type Observer interface {
	// ObserveRequest reports one request the Guard finished: code is ""
	// when it was passed on, else the problem code it was rejected with;
	// d is the time spent in the Guard before the upstream.
	ObserveRequest(code string, d time.Duration)
	// ObserveStore reports one store call: store is "nonce" or
	// "idempotency", op the operation ("add", "claim", "renew",
	// "complete", "release").
	ObserveStore(store, op string, d time.Duration, err error)
	// ObserveFailOpen reports a request let through because store failed
	// under fail_mode open.
	ObserveFailOpen(store string)
	// ObserveIdempotency reports an event of the dedupe step ("executed",
	// "replayed", "in_progress", "reused", "released", "store_error",
	// "fail_open").
	ObserveIdempotency(event string)
}

// QuotaObserver is implemented by Observers that count the requests
// refused because their key entry used up its share of a bounded store
// (quota_exceeded); store is "nonce" or "idempotency". The Guard reports
// to it when its Observer implements it.
type QuotaObserver interface {
	ObserveQuotaExceeded(store string)
}

// WithObserver sets the Observer. Default: none.
func WithObserver(o Observer) Option {
	return func(g *Guard) { g.observer = o }
}

// observedNonces measures every call of a nonce store.
type observedNonces struct {
	s nonce.Store
	o Observer
}

func (n observedNonces) Add(ctx context.Context, e nonce.Entry) error {
	start := time.Now()
	err := n.s.Add(ctx, e)
	rerr := err
	if err != nil && (isReplay(err) || errors.Is(err, nonce.ErrQuotaExceeded)) {
		rerr = nil // a replay or a used-up share is an answer, not a store error
	}
	n.o.ObserveStore("nonce", "add", time.Since(start), rerr)
	return err
}

func isReplay(err error) bool { return errors.Is(err, nonce.ErrReplayed) }

// observedIdempotency measures every call of an idempotency store.
type observedIdempotency struct {
	s idempotency.Store
	o Observer
}

func (i observedIdempotency) Claim(ctx context.Context, key string, fp idempotency.Fingerprint, lease time.Duration) (idempotency.Claim, error) {
	start := time.Now()
	c, err := i.s.Claim(ctx, key, fp, lease)
	i.o.ObserveStore("idempotency", "claim", time.Since(start), err)
	return c, err
}

// ClaimFor forwards to the store's ClaimFor when it keeps shares.
func (i observedIdempotency) ClaimFor(ctx context.Context, owner, key string, fp idempotency.Fingerprint, lease time.Duration) (idempotency.Claim, error) {
	oc, ok := i.s.(idempotency.OwnerClaimer)
	if !ok {
		return i.Claim(ctx, key, fp, lease)
	}
	start := time.Now()
	c, err := oc.ClaimFor(ctx, owner, key, fp, lease)
	rerr := err
	if errors.Is(err, idempotency.ErrQuotaExceeded) {
		rerr = nil // an answer, not a store error
	}
	i.o.ObserveStore("idempotency", "claim", time.Since(start), rerr)
	return c, err
}

func (i observedIdempotency) Renew(ctx context.Context, key, token string, lease time.Duration) error {
	start := time.Now()
	err := i.s.Renew(ctx, key, token, lease)
	i.o.ObserveStore("idempotency", "renew", time.Since(start), err)
	return err
}

func (i observedIdempotency) Complete(ctx context.Context, key, token string, resp *idempotency.Response, ttl time.Duration) error {
	start := time.Now()
	err := i.s.Complete(ctx, key, token, resp, ttl)
	i.o.ObserveStore("idempotency", "complete", time.Since(start), err)
	return err
}

func (i observedIdempotency) Release(ctx context.Context, key, token string) error {
	start := time.Now()
	err := i.s.Release(ctx, key, token)
	i.o.ObserveStore("idempotency", "release", time.Since(start), err)
	return err
}

// observedJoint measures a nonce claimer's joint write as both store calls
// it makes.
type observedJoint struct {
	nc idempotency.NonceClaimer
	o  Observer
}

func (j observedJoint) NonceStore() nonce.Store { return j.nc.NonceStore() }

func (j observedJoint) ClaimWithNonce(ctx context.Context, n nonce.Entry, owner, key string, fp idempotency.Fingerprint, lease time.Duration) (idempotency.Claim, error, error) {
	start := time.Now()
	c, nonceErr, claimErr := j.nc.ClaimWithNonce(ctx, n, owner, key, fp, lease)
	d := time.Since(start)
	rerr := nonceErr
	if nonceErr != nil && (isReplay(nonceErr) || errors.Is(nonceErr, nonce.ErrQuotaExceeded)) {
		rerr = nil // a replay or a used-up share is an answer, not a store error
	}
	j.o.ObserveStore("nonce", "add", d, rerr)
	if nonceErr == nil {
		rerr = claimErr
		if errors.Is(claimErr, idempotency.ErrQuotaExceeded) {
			rerr = nil
		}
		j.o.ObserveStore("idempotency", "claim", d, rerr)
	}
	return c, nonceErr, claimErr
}
