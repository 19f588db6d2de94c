package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/disk"
)

func runCheck(t *testing.T, doc string) (int, string, string, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "gw.yaml")
	require.NoError(t, os.WriteFile(path, []byte(doc), 0o600))
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"check", "--config", path}, &stdout, &stderr)
	return code, stdout.String(), stderr.String(), dir
}

// TestCheckPrintsStoresAndRedactedConfiguration: check names the stores
// in effect and the disk store's directory, and prints the effective
// configuration with every secret replaced.
func TestCheckPrintsStoresAndRedactedConfiguration(t *testing.T) {
	code, out, errOut, dir := runCheck(t, `
upstream: http://127.0.0.1:9000
keys:
  - {id: client-a, secrets: ["check-secret-0123456789", "base64:b2xkLXNlY3JldC0wMTIzNDU2Nzg5"]}
redis: {addrs: ["127.0.0.1:6379"], password: redis-pass-0123}
postgres: {dsn: "postgres://rg:pg-pass-0123@127.0.0.1/rg"}
`)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "gw.yaml: valid")
	assert.Contains(t, out, "# stores: nonce=disk (exact) idempotency=disk disk_path="+filepath.Join(dir, "gw.yaml.data")+" disk_fsync=true\n")
	assert.Contains(t, out, "max_bytes: 1073741824")
	assert.Contains(t, out, "tolerance: 5m0s")
	for _, secret := range []string{"check-secret-0123456789", "b2xkLXNlY3JldC0wMTIzNDU2Nzg5", "redis-pass-0123", "pg-pass-0123"} {
		assert.NotContains(t, out, secret)
	}
	assert.Contains(t, out, redacted)

	code, out, errOut, _ = runCheck(t, `
upstream: http://127.0.0.1:9000
keys: [{id: client-a, secrets: ["check-secret-0123456789"]}]
nonce: {store: memory, mode: bloom}
idempotency: {store: memory}
postgres: {dsn: "host=db user=rg password='pg pass' dbname=rg"}
`)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "# stores: nonce=memory (bloom) idempotency=memory\n")
	assert.NotContains(t, out, "pg pass")
}

// TestCheckRefusesInvalidConfiguration: an invalid field or key fails
// check with the field named, as it would fail serve.
func TestCheckRefusesInvalidConfiguration(t *testing.T) {
	code, _, errOut, _ := runCheck(t, "upstream: http://127.0.0.1:9000\nkeys: [{id: a, secrets: [short]}]\n")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "keys[0].secrets")

	code, _, errOut, _ = runCheck(t, "upstream: http://127.0.0.1:9000\nkeys: [{id: a, secrets: [check-secret-0123456789]}]\nnonce: {store: disk, mode: bloom}\n")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "nonce.store")
}

// TestCheckLeavesTheStoreAlone: check opens no store, so it answers while
// a gateway holds the disk store.
func TestCheckLeavesTheStoreAlone(t *testing.T) {
	dir := t.TempDir()
	db, err := disk.Open(filepath.Join(dir, "gw.yaml.data"))
	require.NoError(t, err)
	defer db.Close()
	path := filepath.Join(dir, "gw.yaml")
	require.NoError(t, os.WriteFile(path, []byte("upstream: http://127.0.0.1:9000\nkeys: [{id: a, secrets: [check-secret-0123456789]}]\n"), 0o600))
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run(context.Background(), []string{"check", "--config", path}, &stdout, &stderr), stderr.String())
}

// TestCheckPlacesEveryError: check (and serve) prints every error of the file, one a
// line, each as file:line:column and field path, sorted by line, an
// unknown field with the nearest known name, never a secret's value; and
// places the errors of building the keys the same way.
func TestCheckPlacesEveryError(t *testing.T) {
	t.Setenv("RG_CHECK_SECRET", "env-secret-0123456789")
	code, out, errOut, dir := runCheck(t, `upstream: http://127.0.0.1:9000
keys:
  - id: a
    secrets: ["${RG_CHECK_SECRET}"]
timestmp: {tolerance: 1m}
timestamp:
  tolerance: five minutes
redis:
  password: literal-redis-pass
  db: ${RG_CHECK_SECRET}
idempotency:
  methods: [POST, PATCH, post]
`)
	assert.Equal(t, 1, code)
	assert.Empty(t, out)
	path := filepath.Join(dir, "gw.yaml")
	assert.Equal(t, "replayguard: "+strings.Join([]string{
		path + `:5:1: timestmp: unknown field, did you mean "timestamp"?`,
		path + `:7:14: timestamp.tolerance: want a duration such as "300ms", "5m" or "7d", got "five minutes"`,
		path + `:10:7: redis.db: want a whole number, got <redacted>`,
		path + `:12:26: idempotency.methods[2]: want an upper-case method name, got "post"`,
	}, "\n")+"\n", errOut)
	var serveOut, serveErr bytes.Buffer
	assert.Equal(t, 1, run(context.Background(), []string{"serve", "--config", path}, &serveOut, &serveErr))
	assert.Equal(t, errOut, serveErr.String(), "serve prints what check prints")

	code, _, errOut, dir = runCheck(t, "upstream: http://127.0.0.1:9000\nscheme: jwt\nkeys:\n  - id: a\n    algorithm: EdDSA\n    public_key_file: missing.pem\n")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, filepath.Join(dir, "gw.yaml")+":6:22: keys[0].public_key_file: ")

	code, _, errOut, dir = runCheck(t, "keys: [{id: a, secrets: [check-secret-0123456789]}]\n")
	assert.Equal(t, 1, code)
	assert.Equal(t, "replayguard: "+filepath.Join(dir, "gw.yaml")+": upstream (not set): required by serve, unless auth_listen is set for a forward-auth-only deployment\n", errOut)
}
