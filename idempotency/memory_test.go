package idempotency_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/idempotency/idempotencytest"
)

func TestMemoryConformance(t *testing.T) {
	idempotencytest.Run(t, func(*testing.T) idempotency.Store { return idempotency.NewMemory() })
	idempotencytest.RunQuota(t, 4096, func(*testing.T) idempotency.OwnerClaimer {
		return idempotency.NewMemory(idempotency.WithMemoryKeyShare(4096), idempotency.WithMemoryMaxBytes(1<<20))
	})
}

// liveHeap returns the live heap after a full collection.
func liveHeap() int64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

type memClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *memClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *memClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// memShape is a kind of record: how it is claimed and what it stores.
type memShape struct {
	name     string
	owner    string
	response func(i int) *idempotency.Response // nil: left in progress
}

var memShapes = []memShape{
	{name: "api response", owner: "client-a", response: func(i int) *idempotency.Response {
		// What an upstream answers through the proxy: a few headers whose
		// values are strings of their own, and a small JSON body.
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", "200")
		h.Set("Location", "/v1/charges/"+uuid.NewString())
		h.Set("X-Request-Id", uuid.NewString())
		return &idempotency.Response{Status: 201, Header: h, Body: make([]byte, 200)}
	}},
	{name: "result of Do", response: func(i int) *idempotency.Response {
		return &idempotency.Response{Body: []byte(strconv.Itoa(i))}
	}},
	{name: "large body", owner: "client-b", response: func(int) *idempotency.Response {
		return &idempotency.Response{Status: 200, Header: http.Header{"Content-Type": {"application/octet-stream"}}, Body: make([]byte, 5000)}
	}},
	{name: "in progress", owner: "client-a"},
}

// fillMemory stores n records of shape s in m.
func fillMemory(t *testing.T, m *idempotency.Memory, s memShape, n int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		k := idempotency.ScopedKey("client-a", uuid.NewString())
		c, err := m.ClaimFor(ctx, s.owner, k, sha256.Sum256([]byte(k)), time.Minute)
		require.NoError(t, err)
		require.True(t, c.Acquired)
		if s.response != nil {
			require.NoError(t, m.Complete(ctx, k, c.Token, s.response(i), time.Hour))
		}
	}
}

// TestMemoryCountsTheHeapItHolds: what the store counts against its bound
// is the heap its records really hold, whatever their shape and however
// far its maps and slices have grown: never less, and not more than a
// fifth more.
func TestMemoryCountsTheHeapItHolds(t *testing.T) {
	for _, s := range memShapes {
		for _, n := range []int{9_000, 31_000, 47_000} {
			t.Run(fmt.Sprintf("%s/%d", s.name, n), func(t *testing.T) {
				before := liveHeap()
				m := idempotency.NewMemory(idempotency.WithMemoryMaxBytes(0), idempotency.WithMemoryKeyShare(1<<40))
				fillMemory(t, m, s, n)
				held := liveHeap() - before
				counted := m.Bytes()
				t.Logf("%d records: %d bytes of heap each, %d counted", n, held/int64(n), counted/int64(n))
				assert.LessOrEqual(t, held, counted, "the store holds more than it counts")
				assert.GreaterOrEqual(t, float64(held), 0.8*float64(counted), "the store counts far more than it holds")
				runtime.KeepAlive(m)
			})
		}
	}
}

// TestMemoryBoundHoldsTheHeap: filled until it refuses, the store holds
// no more heap than its bound, and no less than 80% of it.
func TestMemoryBoundHoldsTheHeap(t *testing.T) {
	const bound = 16 << 20
	before := liveHeap()
	m := idempotency.NewMemory(idempotency.WithMemoryMaxBytes(bound))
	ctx := context.Background()
	s := memShapes[0]
	stored := 0
	for ; ; stored++ {
		k := idempotency.ScopedKey("client-a", uuid.NewString())
		c, err := m.Claim(ctx, k, sha256.Sum256([]byte(k)), time.Minute)
		if err != nil {
			require.ErrorIs(t, err, idempotency.ErrUnavailable)
			break
		}
		require.NoError(t, m.Complete(ctx, k, c.Token, s.response(stored), time.Hour))
	}
	held := liveHeap() - before
	t.Logf("%d records in %d bytes of heap (%d counted)", stored, held, m.Bytes())
	assert.LessOrEqual(t, held, int64(bound))
	assert.GreaterOrEqual(t, held, int64(bound)*8/10)
	runtime.KeepAlive(m)
}

// TestMemoryGivesBackWhatExpired: once its records expire, the store's
// maps and heaps shrink back rather than keep the room of their peak.
func TestMemoryGivesBackWhatExpired(t *testing.T) {
	clk := &memClock{t: time.Unix(1_700_000_000, 0)}
	before := liveHeap()
	m := idempotency.NewMemory(idempotency.WithMemoryClock(clk.now), idempotency.WithMemoryKeyShare(1<<40))
	fillMemory(t, m, memShapes[3], 40_000)
	full := liveHeap() - before
	clk.advance(2 * time.Minute)
	m.Sweep()
	require.Zero(t, m.Len())
	require.Zero(t, m.Bytes())
	left := liveHeap() - before
	t.Logf("%d bytes held by 40,000 records, %d once they expired", full, left)
	assert.Less(t, left, full/20, "the peak's maps and heaps are given back")
	runtime.KeepAlive(m)
}

// TestMemoryReplaysAResponseOfItsOwn: a replayed response is decoded anew
// each time, so a caller changing it changes nothing stored.
func TestMemoryReplaysAResponseOfItsOwn(t *testing.T) {
	m := idempotency.NewMemory()
	ctx := context.Background()
	fp := sha256.Sum256([]byte("r"))
	c, err := m.Claim(ctx, "k", fp, time.Minute)
	require.NoError(t, err)
	resp := &idempotency.Response{Status: 201, Header: http.Header{"A": {"1", ""}, "B": {strconv.Itoa(1 << 20)}}, Body: []byte("body")}
	require.NoError(t, m.Complete(ctx, "k", c.Token, resp, time.Minute))
	resp.Header.Set("A", "changed by the caller")
	resp.Body[0] = 'X'

	got, err := m.Claim(ctx, "k", fp, time.Minute)
	require.NoError(t, err)
	want := &idempotency.Response{Status: 201, Header: http.Header{"A": {"1", ""}, "B": {"1048576"}}, Body: []byte("body")}
	require.Equal(t, want, got.Existing.Response)
	got.Existing.Response.Header.Set("A", "changed")
	got.Existing.Response.Body[0] = 'Y'
	again, err := m.Claim(ctx, "k", fp, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, want, again.Existing.Response)
}
