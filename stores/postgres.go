package stores

import (
	"context"
	"errors"

	"github.com/replayguard/replayguard"
)

func (s *Set) openPostgres(context.Context, replayguard.Config) error {
	return &replayguard.FieldError{Field: "idempotency.store", Err: errors.New(`store "postgres" is not available in this build`)}
}
