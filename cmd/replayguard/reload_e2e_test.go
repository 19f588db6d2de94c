package main_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/signature/hmacsig"
)

// hangup sends SIGHUP and waits for the reload's n-th outcome line.
func hangup(t *testing.T, g *gateway, n int) {
	t.Helper()
	require.NoError(t, g.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool {
		logs := g.logs.String()
		return strings.Count(logs, `"msg":"configuration reloaded"`)+strings.Count(logs, `"msg":"configuration reload failed; the running configuration stays"`) >= n
	}, 10*time.Second, 10*time.Millisecond, "no reload line")
}

const reloadConfig = `
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: %s
nonce: {store: %s}
idempotency: {store: %s}
keys:
  - {id: client-a, secrets: ["file:secret-a"]}
  - {id: client-b, secrets: ["steady-secret-0123456789"]}
`

// SIGHUP reads the configuration again: a secret kept in a file rotates,
// the stores are kept (a nonce accepted before is still a replay, a stored
// response still replayed), an invalid file leaves the running
// configuration, and fields that cannot change while running keep their
// value.
func TestBinaryReloadRotatesASecretAndKeepsTheStores(t *testing.T) {
	for _, store := range []string{"memory", "disk"} {
		t.Run(store, func(t *testing.T) {
			up := newUpstream(t)
			dir := t.TempDir()
			path := filepath.Join(dir, "replayguard.yaml")
			secretPath := filepath.Join(dir, "secret-a")
			const oldSecret, newSecret = "old-secret-0123456789", "new-secret-0123456789"
			require.NoError(t, os.WriteFile(secretPath, []byte(oldSecret+"\n"), 0o600))
			cfg := fmt.Sprintf(reloadConfig, up.URL, store, store)
			require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
			g := startGatewayAt(t, path)

			const steady = "steady-secret-0123456789"
			get := signed(t, g, "client-b", steady, http.MethodGet, "/v1/a", "", time.Now())
			require.Equal(t, http.StatusOK, send(t, get).status)
			post := signed(t, g, "client-b", steady, http.MethodPost, "/v1/charges", "{}", time.Now())
			first := send(t, post)
			require.Equal(t, http.StatusOK, first.status, first.body)

			require.NoError(t, os.WriteFile(secretPath, []byte(newSecret+"\n"), 0o600))
			hangup(t, g, 1)
			assert.Contains(t, g.logs.String(), `"stores_kept":true`)

			assert.Equal(t, "signature_invalid", send(t, signed(t, g, "client-a", oldSecret, http.MethodGet, "/v1/b", "", time.Now())).code,
				"the rotated secret no longer verifies")
			assert.Equal(t, http.StatusOK, send(t, signed(t, g, "client-a", newSecret, http.MethodGet, "/v1/b", "", time.Now())).status)
			assert.Equal(t, "nonce_replayed", send(t, clone(t, get, "")).code, "a nonce accepted before the reload is kept")
			retry := signed(t, g, "client-b", steady, http.MethodPost, "/v1/charges", "{}", time.Now().Add(time.Second))
			retry.Header.Set("Idempotency-Key", post.Header.Get("Idempotency-Key"))
			r := send(t, resigned(t, retry, "client-b", steady, "{}"))
			assert.Equal(t, "true", r.header.Get("Idempotent-Replayed"), "a record stored before the reload is kept: "+r.body)
			assert.Equal(t, first.body, r.body)

			// An invalid file: logged, counted, the running configuration stays.
			require.NoError(t, os.WriteFile(path, []byte(cfg+"timestamp: {tolerance: five minutes}\n"), 0o600))
			hangup(t, g, 2)
			assert.Contains(t, g.logs.String(), "configuration reload failed")
			assert.Equal(t, http.StatusOK, send(t, signed(t, g, "client-a", newSecret, http.MethodGet, "/v1/c", "", time.Now())).status)

			// A field that cannot change while running keeps its value.
			require.NoError(t, os.WriteFile(path, []byte(strings.Replace(cfg, "listen: 127.0.0.1:0\n", "listen: 127.0.0.1:1\n", 1)), 0o600))
			hangup(t, g, 3)
			assert.Regexp(t, regexp.MustCompile(`"kept":\["listen"\]`), g.logs.String())
			assert.Equal(t, http.StatusOK, send(t, signed(t, g, "client-a", newSecret, http.MethodGet, "/v1/d", "", time.Now())).status)

			m := scrape(t, g)
			for _, result := range []string{"ok", "error", "partial"} {
				assert.Regexp(t, regexp.MustCompile(`replayguard_config_reloads_total\{result="`+result+`"\} 1\b`), m)
			}
		})
	}
}

// Requests in flight during a reload finish on the configuration they
// started on, their records stored; new requests see the new one. A disk
// store is handed over to the new stores, not reopened.
func TestBinaryReloadLetsRequestsInFlightFinish(t *testing.T) {
	for _, store := range []string{"memory", "disk"} {
		t.Run(store, func(t *testing.T) {
			release := make(chan struct{})
			var once sync.Once
			t.Cleanup(func() { once.Do(func() { close(release) }) })
			slow := newUpstream(t)
			slow.Config.Handler = gated(slow, release)
			dir := t.TempDir()
			path := filepath.Join(dir, "replayguard.yaml")
			require.NoError(t, os.WriteFile(filepath.Join(dir, "secret-a"), []byte("old-secret-0123456789"), 0o600))
			cfg := fmt.Sprintf(reloadConfig, slow.URL, store, store)
			require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
			g := startGatewayAt(t, path)

			post := signed(t, g, "client-a", "old-secret-0123456789", http.MethodPost, "/v1/charges", "{}", time.Now())
			done := make(chan response, 1)
			go func() { done <- send(t, post) }()
			require.Eventually(t, func() bool { return slow.hits.Load() == 1 }, 5*time.Second, 5*time.Millisecond)

			// The new configuration drops idempotency and changes the store: the
			// request in flight still completes its record on the old stores.
			require.NoError(t, os.WriteFile(path, []byte(strings.Replace(cfg, "idempotency: {store: "+store+"}", "idempotency: {enabled: false}", 1)), 0o600))
			hangup(t, g, 1)
			once.Do(func() { close(release) })
			r := <-done
			assert.Equal(t, http.StatusOK, r.status, r.body)
			assert.Contains(t, g.logs.String(), `"stores_kept":false`)

			// New requests run on the new configuration: no key required.
			r = send(t, signed(t, g, "client-a", "old-secret-0123456789", http.MethodPost, "/v1/refunds", "{}", time.Now()))
			assert.Equal(t, http.StatusOK, r.status, r.body)
			assert.Empty(t, r.header.Get("Idempotent-Replayed"))

		})
	}
}

// gated is u's handler, holding each request until release is closed.
func gated(u *countingUpstream, release <-chan struct{}) http.Handler {
	next := u.Config.Handler
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r)
		<-release
	})
}

// resigned is r signed anew as keyID with secret, its headers as they are
// (an Idempotency-Key set after signing is then covered).
func resigned(t *testing.T, r *http.Request, keyID, secret, body string) *http.Request {
	t.Helper()
	c := clone(t, r, body)
	s := &hmacsig.Signer{KeyID: keyID, Secret: []byte(secret), Now: time.Now}
	require.NoError(t, s.Sign(c, []byte(body)))
	return c
}
