package jwtinterop_test

import (
	"bytes"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/traefik/yaegi/interp"
	"github.com/traefik/yaegi/stdlib"
)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// TestSchemeUnderYaegi interprets testdata/check.go.txt with package
// signature and its dependencies vendored from source, as Traefik loads a
// plugin: the jwt scheme must load and run there (STYLE.md, "The Traefik
// constraint").
func TestSchemeUnderYaegi(t *testing.T) {
	gopath := t.TempDir()
	dir := filepath.Join(gopath, "src", "jwtcheck")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	src, err := os.ReadFile(filepath.Join("testdata", "check.go.txt"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "check.go"), src, 0o644))
	for importPath, pkgDir := range sourceDeps(t, "github.com/replayguard/replayguard/signature/jwtsig") {
		copyGoFiles(t, pkgDir, filepath.Join(dir, "vendor", filepath.FromSlash(importPath)))
	}
	i := interp.New(interp.Options{GoPath: gopath, Env: os.Environ()})
	require.NoError(t, i.Use(stdlib.Symbols))
	_, err = i.Eval(`import "jwtcheck"`)
	require.NoError(t, err, "Yaegi cannot load package signature")
	v, err := i.Eval("jwtcheck.Run()")
	require.NoError(t, err)
	require.Equal(t, "ok", v.String())
}

// sourceDeps maps every non-standard package pkg depends on, pkg included,
// to its directory.
func sourceDeps(t *testing.T, pkg string) map[string]string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("go", "list", "-deps", "-f", `{{if not .Standard}}{{.ImportPath}}{{"\t"}}{{.Dir}}{{end}}`, pkg)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "go list: %s", stderr.String())
	deps := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		importPath, d, ok := strings.Cut(line, "\t")
		require.True(t, ok, "go list line %q", line)
		deps[importPath] = d
	}
	return deps
}

func copyGoFiles(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(to, 0o755))
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, name))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(to, name), b, 0o644))
	}
}
