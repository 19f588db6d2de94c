package main_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/postgres/pgtest"
)

// TestBinaryPostgresIdempotency runs two gateways sharing one PostgreSQL
// idempotency store: a retry through either gets the stored response, and
// concurrent requests with one key spread over both execute once.
func TestBinaryPostgresIdempotency(t *testing.T) {
	dsn := pgtest.Start(t)
	up := newOpUpstream(t)
	cfg := fmt.Sprintf(idemConfig, up.URL) + fmt.Sprintf("postgres: {dsn: %q}\n", dsn)
	cfg = replaceLine(cfg, "idempotency: {ttl: 1h, lease: 2s}", "idempotency: {ttl: 1h, lease: 2s, store: postgres}")
	g1 := startGateway(t, cfg)
	g2 := startGateway(t, cfg)
	const secretA = "secret-a-0123456789"

	key := uuid.NewString()
	first := send(t, signedWithKey(t, g1, "client-a", secretA, "/v1/charges", key, `{"amount":1}`))
	require.Equal(t, 201, first.status, first.body)
	retry := send(t, signedWithKey(t, g2, "client-a", secretA, "/v1/charges", key, `{"amount":1}`))
	require.Equal(t, 201, retry.status, retry.body)
	assert.Equal(t, "true", retry.header.Get("Idempotent-Replayed"), "the other instance replays from the shared store")
	assert.Equal(t, first.body, retry.body)
	reused := send(t, signedWithKey(t, g2, "client-a", secretA, "/v1/charges", key, `{"amount":2}`))
	assert.Equal(t, 422, reused.status)

	key = uuid.NewString()
	before := up.executions.Load()
	var wg sync.WaitGroup
	var created atomic.Int64
	for i := 0; i < 60; i++ {
		g := g1
		if i%2 == 1 {
			g = g2
		}
		req := signedWithKey(t, g, "client-a", secretA, "/slow", key, `{"amount":3}`)
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.DefaultClient.Do(req)
			if !assert.NoError(t, err) {
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == 201 && resp.Header.Get("Idempotent-Replayed") == "" {
				created.Add(1)
			} else {
				assert.Contains(t, []int{201, 409}, resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int64(1), created.Load())
	assert.Equal(t, before+1, up.executions.Load(), "executed exactly once across both instances")
}

func replaceLine(s, old, repl string) string {
	if !strings.Contains(s, old) {
		panic("line not found: " + old)
	}
	return strings.Replace(s, old, repl, 1)
}
