package main_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBinaryDiskFullIsUnavailable runs the gateway with a file size limit
// (RLIMIT_FSIZE, through prlimit), so that no file of its disk store can
// grow past 1 MiB, as on a full disk: once its log is full, requests get
// 503 store_unavailable with Retry-After, /readyz answers 503, the
// refused writes are counted, the process stays up, and what was stored
// before still answers.
func TestBinaryDiskFullIsUnavailable(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	require.NoError(t, err, "prlimit (util-linux) is needed")
	up := newUpstream(t)
	path := filepath.Join(t.TempDir(), "gw.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: %s
max_body_bytes: 65536
keys: [{id: client-a, secrets: [%s]}]
`, up.URL, quotaSecretA)), 0o600))
	g := startGatewayWrapped(t, path, []string{prlimit, "--fsize=1048576", "--"})
	status, body := readyz(t, g)
	require.Equal(t, http.StatusOK, status, body)

	body4k := strings.Repeat("x", 4096)
	first := signed(t, g, "client-a", quotaSecretA, http.MethodPost, "/v1/charges", body4k, time.Now())
	require.Equal(t, http.StatusOK, send(t, first).status)
	m := scrape(t, g)
	assert.Positive(t, metricValue(t, m, "replayguard_disk_fsync_seconds_count"), "the log was synced for the first request")
	assert.Positive(t, metricValue(t, m, "replayguard_disk_commit_seconds_count"))
	var refused *response
	for i := 0; i < 1000 && refused == nil; i++ {
		resp := send(t, signed(t, g, "client-a", quotaSecretA, http.MethodPost, "/v1/charges", body4k, time.Now()))
		if resp.status != http.StatusOK {
			refused = &resp
		}
	}
	require.NotNil(t, refused, "the file never reached its size limit")
	require.Equal(t, http.StatusServiceUnavailable, refused.status, refused.body)
	assert.Equal(t, "store_unavailable", refused.code)
	assert.Equal(t, "1", refused.header.Get("Retry-After"))

	status, body = readyz(t, g)
	assert.Equal(t, http.StatusServiceUnavailable, status, body)
	assert.Contains(t, body, "disk")
	assert.Greater(t, metricValue(t, scrape(t, g), "replayguard_disk_write_errors_total"), 0.0)

	replay := send(t, clone(t, first, body4k))
	assert.Equal(t, http.StatusUnauthorized, replay.status, "a stored nonce still answers: %s", replay.body)
	assert.Equal(t, "nonce_replayed", replay.code)
}
