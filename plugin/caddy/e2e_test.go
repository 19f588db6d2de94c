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

	"github.com/replayguard/replayguard/disk"
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
	ports := freePorts(t, 2)
	admin, port := ports[0], ports[1]
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

	p := startCaddyProcess(t, bin, env, "run", "--config", config, "--adapter", "caddyfile")
	c := &http.Client{Timeout: 10 * time.Second}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	p.waitServing(t, c, base)

	first, stored := exercise(t, c, base, secret, up)

	reload := exec.Command(bin, "reload", "--config", config, "--adapter", "caddyfile",
		"--address", fmt.Sprintf("localhost:%d", admin), "--force")
	reload.Env = env
	out, err := reload.CombinedOutput()
	require.NoError(t, err, "caddy reload:\n%s", out)
	require.Contains(t, p.logs.String(), `"stores_carried_over":true`, "the reload provisioned a new handler")

	afterReload(t, c, base, secret, up, first, stored)
}

// caddyProcess is a Caddy binary running for a test.
type caddyProcess struct {
	cmd    *exec.Cmd
	logs   *syncBuffer
	exited chan struct{}
}

// startCaddyProcess starts bin with args and env; at the end of the test
// it is interrupted (killed if it does not exit within 10 seconds), and
// its output logged if the test failed.
func startCaddyProcess(t *testing.T, bin string, env []string, args ...string) *caddyProcess {
	t.Helper()
	p := &caddyProcess{cmd: exec.Command(bin, args...), logs: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd.Env, p.cmd.Stdout, p.cmd.Stderr = env, p.logs, p.logs
	require.NoError(t, p.cmd.Start())
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop(os.Interrupt)
		if t.Failed() {
			t.Logf("caddy output:\n%s", p.logs.String())
		}
	})
	return p
}

// stop sends sig and waits for the process to exit, killing it after 10
// seconds.
func (p *caddyProcess) stop(sig os.Signal) {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// waitServing waits until base answers.
func (p *caddyProcess) waitServing(t *testing.T, c *http.Client, base string) {
	t.Helper()
	waitUntil(t, p.exited, func() bool {
		resp, err := c.Get(base + "/")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return true
	})
}

// diskRestartCaddyfile puts both stores on disk at the default path
// under Caddy's data directory.
const diskRestartCaddyfile = `{
	admin {$RG_CADDY_ADMIN}
	default_bind 127.0.0.1
	persist_config off
}

:{$RG_CADDY_PORT} {
	replayguard {
		key client-a {env.CLIENT_A_SECRET}
		nonce {
			store disk
		}
		idempotency {
			methods POST
			store disk
		}
	}
	uri strip_prefix /api
	reverse_proxy {$RG_UPSTREAM}
}
`

// TestCaddyBinaryDiskStoreSurvivesCrashAndRestart runs the Caddy binary
// with both stores on disk: a signed request, its replay and an idempotent
// retry; then the process is killed (SIGKILL: no cleanup runs) and
// started again, and the replay is still refused and the retry answered
// from the stored response; the same after an orderly stop (SIGINT) and
// a third start.
func TestCaddyBinaryDiskStoreSurvivesCrashAndRestart(t *testing.T) {
	skipShort(t, "builds and starts a Caddy binary")
	bin := caddyBinary(t)
	up := newUpstream(t)
	ports := freePorts(t, 2)
	admin, port := ports[0], ports[1]
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
	config := filepath.Join(t.TempDir(), "Caddyfile")
	require.NoError(t, os.WriteFile(config, []byte(diskRestartCaddyfile), 0o600))
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	run := func() *caddyProcess {
		p := startCaddyProcess(t, bin, env, "run", "--config", config, "--adapter", "caddyfile")
		p.waitServing(t, c, base)
		return p
	}

	p := run()
	first, stored := exercise(t, c, base, secret, up)
	assert.True(t, disk.Exists(filepath.Join(home, "data", "caddy", "replayguard", "default")))
	p.stop(os.Kill)

	p = run()
	afterReload(t, c, base, secret, up, first, stored)
	p.stop(os.Interrupt)

	run()
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
