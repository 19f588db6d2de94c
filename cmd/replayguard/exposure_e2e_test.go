package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startupLogs runs `replayguard serve` on a file of the given content and
// mode and returns its log records up to the one announcing it serves.
func startupLogs(t *testing.T, doc string, mode os.FileMode, env ...string) []map[string]any {
	t.Helper()
	path := filepath.Join(t.TempDir(), "replayguard.yaml")
	require.NoError(t, os.WriteFile(path, []byte(doc), 0o600))
	require.NoError(t, os.Chmod(path, mode))
	cmd := exec.Command(binary(t), "serve", "--config", path)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	})
	done := make(chan []map[string]any, 1)
	go func() {
		var recs []map[string]any
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) != nil {
				continue
			}
			recs = append(recs, rec)
			if rec["msg"] == "replayguard serving" {
				break
			}
		}
		done <- recs
	}()
	select {
	case recs := <-done:
		return recs
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not start")
		return nil
	}
}

func TestBinaryWarnsOfReadableLiteralSecrets(t *testing.T) {
	up := newUpstream(t)
	literal := fmt.Sprintf("listen: 127.0.0.1:0\nupstream: %s\nkeys:\n  - id: client-a\n    secrets: [literal-secret-0123456789]\n", up.URL)
	fromEnv := fmt.Sprintf("listen: 127.0.0.1:0\nupstream: %s\nkeys:\n  - id: client-a\n    secrets: [\"${RG_EXPOSURE_SECRET}\"]\n", up.URL)
	tests := []struct {
		name string
		doc  string
		mode os.FileMode
		warn bool
	}{
		{"literal secret, world-readable", literal, 0o644, true},
		{"literal secret, group-readable", literal, 0o640, true},
		{"literal secret, owner only", literal, 0o600, false},
		{"secret from the environment, world-readable", fromEnv, 0o644, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := startupLogs(t, tt.doc, tt.mode, "RG_EXPOSURE_SECRET=env-secret-0123456789")
			require.NotEmpty(t, recs)
			require.Equal(t, "replayguard serving", recs[len(recs)-1]["msg"], "it warns, never refuses")
			var warning map[string]any
			for _, r := range recs {
				if r["level"] == "WARN" {
					warning = r
				}
			}
			if !tt.warn {
				assert.Nil(t, warning)
				return
			}
			require.NotNil(t, warning, "want a warning in %v", recs)
			assert.Contains(t, warning["msg"], "readable by group or others")
			assert.Equal(t, fmt.Sprintf("%#o", uint32(tt.mode)), warning["mode"])
			assert.Equal(t, []any{"keys[0].secrets[0] (line 5)"}, warning["fields"])
			assert.NotContains(t, fmt.Sprint(warning), "literal-secret-0123456789", "the secret itself is never logged")
		})
	}
}
