package stores

import (
	"context"
	"errors"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/postgres"
)

// WithPostgres sets the database of a postgres idempotency store (the
// `postgres:` section).
func WithPostgres(c postgres.Config) Option {
	return func(o *options) { o.postgres = c }
}

func (s *Set) openPostgres(ctx context.Context, o options) error {
	c := o.postgres.WithDefaults()
	if c.DSN == "" {
		return &replayguard.FieldError{Field: "postgres.dsn", Err: errors.New("required when idempotency.store is \"postgres\"")}
	}
	if err := c.Validate(); err != nil {
		return err
	}
	st, err := postgres.Open(ctx, c.DSN)
	if err != nil {
		return &replayguard.FieldError{Field: "postgres.dsn", Err: err}
	}
	s.Idempotency = idempotency.WithTimeout(st, c.Timeout.D())
	s.Names = append(s.Names, "idempotency:postgres")
	s.pingers = append(s.pingers, namedPinger{"idempotency:postgres", st})
	s.closers = append(s.closers, func() error { st.Close(); return nil })
	return nil
}
