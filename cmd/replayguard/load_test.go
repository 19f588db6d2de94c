package main_test

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLoadCommand runs `replayguard load` against a real gateway: fresh
// requests pass, every 10th is a replay and is rejected, nothing else.
func TestLoadCommand(t *testing.T) {
	up := newOpUpstream(t)
	g := startGateway(t, fmt.Sprintf(idemConfig, up.URL))
	out, err := exec.Command(binary(t), "load", "--secret", "secret-a-0123456789", "--key-id", "client-a",
		"--rate", "400", "--duration", "1s", "--concurrency", "8", "--replay-every", "10", "--json",
		"http://"+g.addr+"/v1/charges").Output()
	if ee, ok := err.(*exec.ExitError); ok {
		t.Logf("stderr: %s", ee.Stderr)
	}
	require.NoError(t, err, string(out))
	var sum struct {
		Sent     int            `json:"sent"`
		Outcomes map[string]int `json:"outcomes"`
		P99      float64        `json:"p99_ms"`
	}
	require.NoError(t, json.Unmarshal(out, &sum), string(out))
	require.Greater(t, sum.Sent, 50)
	replays := sum.Outcomes["401 nonce_replayed"]
	accepted := sum.Outcomes["201"]
	assert.Equal(t, sum.Sent, replays+accepted, "only accepted and replayed: %v", sum.Outcomes)
	assert.InDelta(t, sum.Sent/10, replays, 3, "every 10th request is a replay")
	assert.Equal(t, int64(accepted), up.executions.Load())
	assert.Greater(t, sum.P99, 0.0)
}

// TestLoadRequests stops a load run after --requests requests, long before
// its --duration.
func TestLoadRequests(t *testing.T) {
	up := newOpUpstream(t)
	g := startGateway(t, fmt.Sprintf(idemConfig, up.URL))
	out, err := exec.Command(binary(t), "load", "--secret", "secret-a-0123456789", "--key-id", "client-a",
		"--rate", "0", "--duration", "1m", "--concurrency", "8", "--requests", "50", "--json",
		"http://"+g.addr+"/v1/charges").Output()
	if ee, ok := err.(*exec.ExitError); ok {
		t.Logf("stderr: %s", ee.Stderr)
	}
	require.NoError(t, err, string(out))
	var sum struct {
		Sent     int            `json:"sent"`
		Seconds  float64        `json:"seconds"`
		Outcomes map[string]int `json:"outcomes"`
	}
	require.NoError(t, json.Unmarshal(out, &sum), string(out))
	assert.Equal(t, 50, sum.Sent)
	assert.Equal(t, 50, sum.Outcomes["201"], "%v", sum.Outcomes)
	assert.Less(t, sum.Seconds, 30.0)
	assert.Equal(t, int64(50), up.executions.Load())
}
