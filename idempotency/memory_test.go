package idempotency_test

import (
	"testing"

	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/idempotency/idempotencytest"
)

func TestMemoryConformance(t *testing.T) {
	idempotencytest.Run(t, func(*testing.T) idempotency.Store { return idempotency.NewMemory() })
	idempotencytest.RunQuota(t, 4096, func(*testing.T) idempotency.OwnerClaimer {
		return idempotency.NewMemory(idempotency.WithMemoryKeyShare(4096), idempotency.WithMemoryMaxBytes(1<<20))
	})
}
