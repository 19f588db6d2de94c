package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var rgBuild struct {
	sync.Once
	path string
	err  error
}

// rgBinary builds the replayguard binary once per run.
func rgBinary(t *testing.T) string {
	t.Helper()
	rgBuild.Do(func() {
		dir, err := os.MkdirTemp("", "webhook-receiver-")
		if err != nil {
			rgBuild.err = err
			return
		}
		rgBuild.path = filepath.Join(dir, "replayguard")
		out, err := exec.Command("go", "build", "-o", rgBuild.path, "github.com/replayguard/replayguard/cmd/replayguard").CombinedOutput()
		if err != nil {
			rgBuild.err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	require.NoError(t, rgBuild.err)
	return rgBuild.path
}

// readme returns README.md with its shell line continuations joined.
func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	require.NoError(t, err)
	return regexp.MustCompile(`\\\n\s*`).ReplaceAllString(string(b), "")
}

// readmeCommands returns the `bin/replayguard sign` commands of the README
// that start with prefix, split into words (single quotes as the shell
// reads them).
func readmeCommands(t *testing.T, prefix string) [][]string {
	t.Helper()
	var cmds [][]string
	for _, m := range regexp.MustCompile("(?m)"+regexp.QuoteMeta(prefix)+"[^`\n]*").FindAllString(readme(t), -1) {
		cmds = append(cmds, shellWords(t, m))
	}
	return cmds
}

func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	in, quoted := false, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'':
			quoted, in = !quoted, true
		case c == ' ' && !quoted:
			if in {
				words = append(words, w.String())
				w.Reset()
			}
			in = false
		default:
			w.WriteByte(c)
			in = true
		}
	}
	require.False(t, quoted, "unbalanced quote in %q", s)
	if in {
		words = append(words, w.String())
	}
	return words
}

// flagValue returns the value of flag in args.
func flagValue(t *testing.T, args []string, flag string) string {
	t.Helper()
	return args[flagIndex(t, args, flag)+1]
}

func flagIndex(t *testing.T, args []string, flag string) int {
	t.Helper()
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return i
		}
	}
	t.Fatalf("no %s in %q", flag, args)
	return -1
}

// runSign runs a README command with the binary just built, sent to url
// instead of the README's, with extra flags; it returns what it printed
// and its exit status.
func runSign(t *testing.T, readmeArgs []string, url string, extra ...string) (string, int) {
	t.Helper()
	argv := append(append(append([]string(nil), readmeArgs[1:len(readmeArgs)-1]...), extra...), url)
	cmd := exec.Command(rgBinary(t), argv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out) + stderr.String(), ee.ExitCode()
	}
	require.NoError(t, err, stderr.String())
	return string(out), 0
}

// The README's deliveries, fired with `replayguard sign --preset` at the
// receiver, for every preset: the delivery runs the handler, the
// provider's retry of it (same delivery id, signed anew) gets the stored
// response, a delivery under another secret is refused.
func TestReadmeDeliveries(t *testing.T) {
	cmds := readmeCommands(t, "bin/replayguard sign --preset")
	seen := map[string]bool{}
	for _, args := range cmds {
		preset := flagValue(t, args, "--preset")
		seen[preset] = true
		t.Run(preset, func(t *testing.T) {
			var out bytes.Buffer
			h, rc, err := newReceiver(preset, flagValue(t, args, "--secret"), &out)
			require.NoError(t, err)
			srv := httptest.NewServer(h)
			defer srv.Close()
			url := srv.URL + "/webhooks"

			var retry []string
			switch preset {
			case "github", "shopify", "standard-webhooks":
				retry = []string{"--delivery-id", "delivery-" + preset}
			}
			resp, code := runSign(t, args, url, retry...)
			require.Equal(t, 0, code, resp)
			assert.True(t, strings.HasPrefix(resp, "HTTP/1.1 200 OK\n"), resp)
			assert.Contains(t, resp, `{"handled":1}`)
			body := flagValue(t, args, "-d")
			assert.Equal(t, fmt.Sprintf("delivery 1 from %s: %d bytes\n", preset, len(body)), out.String())

			if preset != "slack" {
				if preset == "stripe" || preset == "standard-webhooks" {
					// Signed a second later: a new timestamp, so a
					// retry, not a replay of the same signed delivery.
					time.Sleep(time.Second)
				}
				resp, code = runSign(t, args, url, retry...)
				require.Equal(t, 0, code, resp)
				assert.Contains(t, resp, "Idempotent-Replayed: true\n")
				assert.Contains(t, resp, `{"handled":1}`)
			}

			resp, code = runSign(t, args, url, "--secret", "not-the-endpoint-secret")
			assert.Equal(t, 1, code, resp)
			assert.Contains(t, resp, "HTTP/1.1 401 Unauthorized\n")
			assert.Equal(t, 1, rc.Handled())
		})
	}
	for _, p := range []string{"stripe", "github", "slack", "shopify", "standard-webhooks"} {
		assert.True(t, seen[p], "the README fires a %s delivery", p)
	}
}

// The README's gateway: `replayguard serve` on its webhooks.yaml in front
// of the receiver, and its `sign --config` delivery fired at it twice.
func TestReadmeBehindGateway(t *testing.T) {
	doc := readme(t)
	_, after, ok := strings.Cut(doc, "```yaml\n# webhooks.yaml\n")
	require.True(t, ok)
	cfg, _, ok := strings.Cut(after, "```")
	require.True(t, ok)
	scheme := regexp.MustCompile(`(?m)^scheme: (\S+)$`).FindStringSubmatch(cfg)
	require.NotNil(t, scheme, cfg)
	secret := regexp.MustCompile(`secrets: \["([^"]+)"\]`).FindStringSubmatch(cfg)
	require.NotNil(t, secret, cfg)

	var out bytes.Buffer
	h, rc, err := newReceiver(scheme[1], secret[1], &out)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	defer srv.Close()
	cfg = strings.Replace(cfg, "listen: 127.0.0.1:8080", "listen: 127.0.0.1:0", 1)
	cfg = strings.Replace(cfg, "upstream: http://127.0.0.1:8081", "upstream: "+srv.URL, 1)
	path := filepath.Join(t.TempDir(), "webhooks.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	addr := serveGateway(t, path)

	cmds := readmeCommands(t, "bin/replayguard sign --config webhooks.yaml")
	require.Len(t, cmds, 1)
	args := cmds[0]
	args[flagIndex(t, args, "--config")+1] = path
	resp, code := runSign(t, args, "http://"+addr+"/webhooks")
	require.Equal(t, 0, code, resp)
	assert.Contains(t, resp, `{"handled":1}`)
	time.Sleep(time.Second)
	resp, code = runSign(t, args, "http://"+addr+"/webhooks")
	require.Equal(t, 0, code, resp)
	assert.Contains(t, resp, "Idempotent-Replayed: true\n")
	assert.Equal(t, 1, rc.Handled(), "the retry is answered by the gateway")
}

// serveGateway runs `replayguard serve --config path` (listening on
// 127.0.0.1:0) and returns the address it listens on.
func serveGateway(t *testing.T, path string) string {
	t.Helper()
	cmd := exec.Command(rgBinary(t), "serve", "--config", path)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == "replayguard serving" {
				addr, _ := rec["listen"].(string)
				listening <- addr
			}
		}
		close(listening)
	}()
	select {
	case addr, ok := <-listening:
		require.True(t, ok, "the gateway exited at start")
		return addr
	case <-time.After(30 * time.Second):
		t.Fatal("the gateway did not start")
		return ""
	}
}
