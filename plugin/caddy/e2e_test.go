package replayguardcaddy

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// exampleCaddyfile is the Caddyfile the documentation shows.
var exampleCaddyfile = filepath.Join("..", "..", "examples", "caddy", "Caddyfile")

func TestExampleCaddyfileIsFormattedAndAdapts(t *testing.T) {
	src, err := os.ReadFile(exampleCaddyfile)
	require.NoError(t, err)
	assert.Equal(t, string(caddyfile.Format(src)), string(src), "run caddy fmt --overwrite on examples/caddy/Caddyfile")
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": exampleCaddyfile})
	require.NoError(t, err)
	assert.Empty(t, warnings)
	assert.Contains(t, string(out), `"handler":"replayguard"`)
	assert.Contains(t, string(out), `"{env.CLIENT_A_SECRET}"`, "the secret stays a placeholder in the JSON")
}

// caddyBinary returns RG_CADDY_BIN (bin/caddy from `make caddy`), or
// builds the same main package into a temporary directory.
func caddyBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("RG_CADDY_BIN"); bin != "" {
		abs, err := filepath.Abs(bin)
		require.NoError(t, err)
		_, err = os.Stat(abs)
		require.NoError(t, err, "RG_CADDY_BIN")
		return abs
	}
	bin := filepath.Join(t.TempDir(), "caddy")
	ctx := context.Background()
	if deadline, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-30*time.Second))
		defer cancel()
	}
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/caddy")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build ./cmd/caddy:\n%s", out)
	t.Logf("built %s in %s", bin, time.Since(start).Round(time.Second))
	return bin
}

// syncBuffer collects a process's output for the failure message.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestExampleCaddyfileEndToEnd starts the Caddy binary with
// examples/caddy/Caddyfile in front of a local upstream, sends the signed
// requests over real HTTP, runs `caddy reload --force` and checks the
// nonce is still rejected.
func TestExampleCaddyfileEndToEnd(t *testing.T) {
	skipShort(t, "builds and starts a Caddy binary")
	bin := caddyBinary(t)
	up := newUpstream(t)
	admin, port := freePort(t), freePort(t)
	const secret = "e2e-secret-of-client-a"
	home := t.TempDir()
	env := append(os.Environ(),
		"HOME="+home,
		"XDG_CONFIG_HOME="+filepath.Join(home, "config"),
		"XDG_DATA_HOME="+filepath.Join(home, "data"),
		fmt.Sprintf("RG_CADDY_ADMIN=localhost:%d", admin),
		fmt.Sprintf("RG_CADDY_PORT=%d", port),
		"RG_UPSTREAM="+strings.TrimPrefix(up.URL, "http://"),
		"CLIENT_A_SECRET="+secret,
	)
	config, err := filepath.Abs(exampleCaddyfile)
	require.NoError(t, err)

	var logs syncBuffer
	cmd := exec.Command(bin, "run", "--config", config, "--adapter", "caddyfile")
	cmd.Env, cmd.Stdout, cmd.Stderr = env, &logs, &logs
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("caddy output:\n%s", logs.String())
		}
	})

	c := &http.Client{Timeout: 10 * time.Second}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitUntil(t, exited, func() bool {
		resp, err := c.Get(base + "/")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return true
	})

	first, stored := exercise(t, c, base, secret, up)

	reload := exec.Command(bin, "reload", "--config", config, "--adapter", "caddyfile",
		"--address", fmt.Sprintf("localhost:%d", admin), "--force")
	reload.Env = env
	out, err := reload.CombinedOutput()
	require.NoError(t, err, "caddy reload:\n%s", out)
	require.Contains(t, logs.String(), `"stores_carried_over":true`, "the reload provisioned a new handler")

	afterReload(t, c, base, secret, up, first, stored)
}

// waitUntil polls ready until it holds, failing if the process exits or
// 30 seconds pass.
func waitUntil(t *testing.T, exited <-chan struct{}, ready func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ready() {
		select {
		case <-exited:
			t.Fatal("caddy exited before it answered")
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("caddy did not answer within 30s")
		}
	}
}
