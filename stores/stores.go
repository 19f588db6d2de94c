// Package stores builds the stores a Config names: the embedded memory
// stores by default, the durable embedded disk store, and the shared ones
// (Redis, PostgreSQL) when configured. The root package never imports a store backend, so the code
// the Traefik plugin loads stays free of them; the binary, the Caddy module
// and library users who want configuration-driven stores go through Open.
package stores

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/bloom"
	"github.com/replayguard/replayguard/disk"
	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/postgres"
	"github.com/replayguard/replayguard/redisstore"
)

// Set is the stores of one Guard.
type Set struct {
	// Nonce is the replay store.
	Nonce nonce.Store
	// Idempotency is the dedupe store; nil when idempotency is disabled.
	Idempotency idempotency.Store
	// Names lists each store with what backs it, for health reporting.
	Names []string
	// Warnings are what Open found unsafe but not fatal, such as a Redis
	// whose maxmemory-policy may evict nonces; the binary logs them and
	// names them on /readyz.
	Warnings []string

	pingers []namedPinger
	closers []func() error
	redis   redisClient // shared by the Redis stores; nil until one opens
	disk    *disk.DB    // shared by the disk stores; nil until one opens
	// ownsDisk: Close closes disk (see ReleaseDisk).
	ownsDisk bool

	opts  options
	nonce nonceSettings // what Nonce was built for
	// mu guards what NonceFor adds while the Set serves (a reload):
	// nonces, pingers and closers.
	mu     sync.Mutex
	nonces map[nonceSettings]*Set // NonceFor's other instances
}

// nonceSettings are the fields of a Config that shape a nonce store
// instance on a backend.
type nonceSettings struct {
	store, mode       string
	capacity          int
	falsePositiveRate float64
	localShield       bool
	maxSubFilters     int
	span              time.Duration
}

func nonceSettingsOf(cfg replayguard.Config) nonceSettings {
	n := cfg.Nonce
	ns := nonceSettings{store: n.Store, mode: n.Mode, localShield: n.LocalShield}
	if n.Mode == replayguard.ModeBloom || n.LocalShield {
		// An exact store keeps each entry's own expiry: the window does
		// not shape it.
		ns.capacity, ns.falsePositiveRate, ns.maxSubFilters = n.Capacity, n.FalsePositiveRate, n.MaxSubFilters
		ns.span = cfg.Timestamp.Tolerance.D() + cfg.Timestamp.FutureSkew.D()
	}
	return ns
}

type namedPinger struct {
	name string
	p    pinger
}

type pinger interface {
	Ping(ctx context.Context) error
}

// Option configures Open.
type Option func(*options)

type options struct {
	now      func() time.Time
	postgres postgres.Config
	redis    redisstore.Section
	disk     disk.Config
	diskDB   *disk.DB
}

// WithClock sets the clock of the in-memory stores. Default time.Now. It
// must be the clock the Guard uses.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// Open builds the stores cfg names. cfg must have defaults filled in.
func Open(ctx context.Context, cfg replayguard.Config, opts ...Option) (*Set, error) {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Set{opts: o, nonce: nonceSettingsOf(cfg)}
	if err := s.openNonce(ctx, cfg, o); err != nil {
		_ = s.Close()
		return nil, err
	}
	if cfg.Idempotency.Enabled == nil || *cfg.Idempotency.Enabled {
		if err := s.openIdempotency(ctx, cfg, o); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	return s, nil
}

func (s *Set) openNonce(ctx context.Context, cfg replayguard.Config, o options) error {
	switch cfg.Nonce.Store {
	case replayguard.StoreRedis:
		return s.openRedisNonce(ctx, cfg, o)
	case replayguard.StoreDisk:
		if cfg.Nonce.Mode != replayguard.ModeExact {
			return &replayguard.FieldError{Field: "nonce.store", Err: fmt.Errorf("mode %s has no disk form", cfg.Nonce.Mode)}
		}
		db, err := s.openDisk(cfg, o)
		if err != nil {
			return err
		}
		s.Nonce = db.Nonces()
		s.Names = append(s.Names, "nonce:disk")
	case replayguard.StoreMemory:
		switch cfg.Nonce.Mode {
		case replayguard.ModeExact:
			m := nonce.NewMemory(append(cfg.NonceMemoryOptions(), nonce.WithClock(o.now))...)
			s.add("nonce:memory-exact", m, m)
		case replayguard.ModeBloom:
			span := cfg.Timestamp.Tolerance.D() + cfg.Timestamp.FutureSkew.D()
			m, err := bloom.NewMemory(uint(cfg.Nonce.Capacity), cfg.Nonce.FalsePositiveRate, span, bloom.WithClock(o.now),
				bloom.WithMaxSubFilters(cfg.Nonce.MaxSubFilters), bloom.WithKeyShare(cfg.KeyShare(cfg.Nonce.KeyShare)))
			if err != nil {
				return &replayguard.FieldError{Field: "nonce", Err: err}
			}
			s.add("nonce:memory-bloom", m, m)
		default:
			return &replayguard.FieldError{Field: "nonce.mode", Err: fmt.Errorf("unknown mode %q", cfg.Nonce.Mode)}
		}
	default:
		return &replayguard.FieldError{Field: "nonce.store", Err: fmt.Errorf("store %q is not available in this build", cfg.Nonce.Store)}
	}
	return nil
}

func (s *Set) openIdempotency(ctx context.Context, cfg replayguard.Config, o options) error {
	switch cfg.Idempotency.Store {
	case replayguard.StoreMemory:
		m := idempotency.NewMemory(append(cfg.IdempotencyMemoryOptions(), idempotency.WithMemoryClock(o.now))...)
		s.Idempotency = m
		s.Names = append(s.Names, "idempotency:memory")
		s.pingers = append(s.pingers, namedPinger{"idempotency:memory", m})
		return nil
	case replayguard.StoreDisk:
		db, err := s.openDisk(cfg, o)
		if err != nil {
			return err
		}
		s.Idempotency = db.Records()
		s.Names = append(s.Names, "idempotency:disk")
		return nil
	case replayguard.StorePostgres:
		return s.openPostgres(ctx, o)
	case replayguard.StoreRedis:
		return s.openRedisIdempotency(ctx, cfg, o)
	}
	return &replayguard.FieldError{Field: "idempotency.store", Err: fmt.Errorf("store %q is not available in this build", cfg.Idempotency.Store)}
}

func (s *Set) add(name string, st nonce.Store, p pinger) {
	s.Nonce = st
	s.Names = append(s.Names, name)
	if p != nil {
		s.pingers = append(s.pingers, namedPinger{name, p})
	}
}

// NonceFor returns the nonce store of cfg, a configuration differing from
// the one the Set was opened with in its nonce mode or window only (the
// binary's routes): the Set's own when they shape the store alike (an
// exact store keeps each entry's expiry), else another instance on the
// same backend, built once per settings and closed with the Set.
func (s *Set) NonceFor(ctx context.Context, cfg replayguard.Config) (nonce.Store, error) {
	ns := nonceSettingsOf(cfg)
	if ns == s.nonce {
		return s.Nonce, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sub, ok := s.nonces[ns]; ok {
		return sub.Nonce, nil
	}
	sub := &Set{redis: s.redis, disk: s.disk, opts: s.opts, nonce: ns}
	if err := sub.openNonce(ctx, cfg, s.opts); err != nil {
		return nil, err
	}
	if s.nonces == nil {
		s.nonces = map[nonceSettings]*Set{}
	}
	s.nonces[ns] = sub
	for _, p := range sub.pingers {
		s.pingers = append(s.pingers, namedPinger{p.name + " (" + cfg.Nonce.Mode + ")", p.p})
	}
	s.closers = append(s.closers, sub.closers...)
	if s.redis == nil {
		s.redis = sub.redis
	}
	return sub.Nonce, nil
}

// Options returns the Guard options that install these stores.
func (s *Set) Options() []replayguard.Option {
	opts := []replayguard.Option{replayguard.WithNonceStore(s.Nonce)}
	if s.Idempotency != nil {
		opts = append(opts, replayguard.WithIdempotencyStore(s.Idempotency))
	}
	return opts
}

// Ping checks every store; the error names each one that failed.
func (s *Set) Ping(ctx context.Context) error {
	s.mu.Lock()
	pingers := s.pingers
	s.mu.Unlock()
	var errs []error
	for _, p := range pingers {
		if err := p.p.Ping(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.name, err))
		}
	}
	return errors.Join(errs...)
}

// Close releases every store's resources.
func (s *Set) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i]())
	}
	if s.disk != nil && s.ownsDisk {
		errs = append(errs, s.disk.Close())
	}
	return errors.Join(errs...)
}
