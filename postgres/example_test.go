package postgres_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/postgres"
)

func ExampleOpen() {
	ctx := context.Background()
	s, err := postgres.Open(ctx, os.Getenv("DATABASE_URL"), postgres.WithJanitorInterval(5*time.Minute))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	fp := sha256.Sum256([]byte("POST /v1/charges {...}"))
	c, err := s.Claim(ctx, "client-a\x00key-123", fp, 30*time.Second)
	switch {
	case errors.Is(err, idempotency.ErrUnavailable):
		fmt.Println("store unavailable:", err)
	case err != nil:
		fmt.Println(err)
	case c.Acquired:
		resp := &idempotency.Response{Status: 201, Body: []byte(`{"id":"ch_1"}`)}
		if err := s.Complete(ctx, "client-a\x00key-123", c.Token, resp, 24*time.Hour); errors.Is(err, idempotency.ErrLeaseLost) {
			fmt.Println("another holder took the key over")
		}
	case c.Existing.State == idempotency.StateCompleted:
		fmt.Println("replay:", c.Existing.Response.Status)
	default:
		fmt.Println("in progress")
	}
}
