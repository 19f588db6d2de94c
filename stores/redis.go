package stores

import (
	"context"
	"errors"

	"github.com/replayguard/replayguard"
)

func (s *Set) openRedisNonce(context.Context, replayguard.Config, options) error {
	return &replayguard.FieldError{Field: "nonce.store", Err: errors.New(`store "redis" is not available in this build`)}
}

func (s *Set) openRedisIdempotency(context.Context, replayguard.Config, options) error {
	return &replayguard.FieldError{Field: "idempotency.store", Err: errors.New(`store "redis" is not available in this build`)}
}
