package stores

import (
	"context"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/postgres"
)

func (s *Set) openPostgres(ctx context.Context, cfg replayguard.Config) error {
	st, err := postgres.Open(ctx, cfg.Postgres.DSN)
	if err != nil {
		return &replayguard.FieldError{Field: "postgres.dsn", Err: err}
	}
	s.Idempotency = idempotency.WithTimeout(st, cfg.Postgres.Timeout.D())
	s.Names = append(s.Names, "idempotency:postgres")
	s.pingers = append(s.pingers, namedPinger{"idempotency:postgres", st})
	s.closers = append(s.closers, func() error { st.Close(); return nil })
	return nil
}
