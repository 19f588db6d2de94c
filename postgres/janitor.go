package postgres

import (
	"context"
	"time"
)

// Sweep deletes every expired record, in batches of the janitor batch
// size, and returns how many it deleted. The janitor calls it on each tick;
// it is exported for tests and for deployments that disable the janitor.
func (s *Store) Sweep(ctx context.Context) (int64, error) {
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, s.sweepSQL, s.cfg.janitorBatch)
		if err != nil {
			return total, unavailable("sweep", err)
		}
		n := tag.RowsAffected()
		total += n
		if n < int64(s.cfg.janitorBatch) {
			return total, nil
		}
	}
}

func (s *Store) janitor(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.cfg.janitorInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil && s.cfg.onSweepError != nil {
			s.cfg.onSweepError(err)
		}
	}
}
