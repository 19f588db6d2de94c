package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/idempotency"
)

func TestRun(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(&out))

	var msgs, deliveries, applied, replayed int
	_, err := fmt.Sscanf(out.String(), "messages: %d\ndeliveries: %d\napplied: %d\nreplayed: %d\n",
		&msgs, &deliveries, &applied, &replayed)
	require.NoError(t, err, out.String())
	assert.Equal(t, messages, msgs)
	assert.Equal(t, messages, applied)
	assert.Equal(t, deliveries, applied+replayed)
	assert.Positive(t, replayed, "the stream has duplicates")
	assert.LessOrEqual(t, deliveries, messages*maxDeliveries)
	assert.True(t, strings.HasSuffix(out.String(), "every message applied exactly once\n"))
}

func TestStream(t *testing.T) {
	ids, deliveries := stream(messages, rand.New(rand.NewPCG(1, 2)))
	require.Len(t, ids, messages)
	perID := map[string]int{}
	for _, m := range deliveries {
		perID[m.ID]++
	}
	require.Len(t, perID, messages)
	for _, id := range ids {
		assert.GreaterOrEqual(t, perID[id], 1, id)
		assert.LessOrEqual(t, perID[id], maxDeliveries, id)
	}
}

func TestConsumeAppliesOnce(t *testing.T) {
	ids, deliveries := stream(40, rand.New(rand.NewPCG(3, 4)))
	l := &ledger{applied: map[string]int{}}
	tl, err := consume(context.Background(), idempotency.NewRunner(idempotency.NewMemory()), deliveries, 8, l)
	require.NoError(t, err)
	require.NoError(t, l.check(ids))
	assert.Equal(t, tally{Deliveries: len(deliveries), Applied: len(ids), Replayed: len(deliveries) - len(ids)}, tl)
}

func TestCheckReportsMisses(t *testing.T) {
	l := &ledger{applied: map[string]int{"msg-001": 1, "msg-002": 2}}
	err := l.check([]string{"msg-001", "msg-002", "msg-003"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "message msg-002 applied 2 times")
	assert.Contains(t, err.Error(), "message msg-003 applied 0 times")
	assert.NotContains(t, err.Error(), "msg-001")
}
