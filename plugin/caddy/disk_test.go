package replayguardcaddy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/disk"
	"github.com/replayguard/replayguard/postgres"
	"github.com/replayguard/replayguard/redisstore"
)

// diskConfig names disk as the store of nonces and idempotency records.
func diskConfig() replayguard.Config {
	cfg := testConfig()
	cfg.Nonce.Store = replayguard.StoreDisk
	cfg.Idempotency.Store = replayguard.StoreDisk
	return cfg
}

func serve(t *testing.T, h *Handler, r *http.Request, s *seen) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	require.NoError(t, h.ServeHTTP(w, inCaddy(r, nil), recordingNext(s, http.StatusCreated, nil)))
	return w
}

// requireClosed checks that no store holds dir: it opens at once.
func requireClosed(t *testing.T, dir string) {
	t.Helper()
	db, err := disk.Open(dir, disk.WithLockTimeout(time.Millisecond))
	require.NoError(t, err, "the directory is still held")
	require.NoError(t, db.Close())
	diskMu.Lock()
	defer diskMu.Unlock()
	assert.NotContains(t, diskPaths, dir)
}

func TestDiskPathResolvesUnderCaddyDataDir(t *testing.T) {
	data := t.TempDir()
	t.Setenv("XDG_DATA_HOME", data)
	t.Setenv("RG_CADDY_TEST_DISK", "/srv/rg")
	require.Equal(t, filepath.Join(data, "caddy"), caddy.AppDataDir())
	for name, tt := range map[string]struct{ path, want string }{
		"unset":       {"", filepath.Join(data, "caddy", "replayguard", "default")},
		"relative":    {"replayguard/orders", filepath.Join(data, "caddy", "replayguard", "orders")},
		"absolute":    {"/var/lib/rg/../rg2/", "/var/lib/rg2"},
		"placeholder": {"{env.RG_CADDY_TEST_DISK}/orders", "/srv/rg/orders"},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := diskResolved(disk.Config{Path: tt.path})
			require.NoError(t, err)
			assert.Equal(t, tt.want, c.Path)
		})
	}
	c, err := diskResolved(disk.Config{})
	require.NoError(t, err)
	assert.Equal(t, disk.Config{Path: c.Path}.WithDefaults(), c, "the other fields take disk's defaults")
}

// TestProvisionDiskStoreUnderCaddyDataDir: stores set to disk without a
// path open replayguard/default under Caddy's data directory.
func TestProvisionDiskStoreUnderCaddyDataDir(t *testing.T) {
	data := t.TempDir()
	t.Setenv("XDG_DATA_HOME", data)
	h := mustProvision(t, diskConfig())
	want := filepath.Join(data, "caddy", "replayguard", "default")
	db := h.shared.set.Disk()
	require.NotNil(t, db)
	assert.Equal(t, want, db.Path())
	assert.True(t, disk.Exists(want))
	assert.Equal(t, []string{"nonce:disk", "idempotency:disk"}, h.shared.set.Names)
	require.NoError(t, h.Cleanup())
	requireClosed(t, want)
}

// TestProvisionDefaultStoresStayInMemory: the module's default stays
// memory; nothing is written to Caddy's data directory.
func TestProvisionDefaultStoresStayInMemory(t *testing.T) {
	data := t.TempDir()
	t.Setenv("XDG_DATA_HOME", data)
	h := &Handler{Config: testConfig(), Disk: disk.Config{Fsync: boolp(false)}}
	require.NoError(t, provision(t, h))
	assert.Nil(t, h.shared.set.Disk())
	assert.Equal(t, []string{"nonce:memory-exact", "idempotency:memory"}, h.shared.set.Names)
	assert.NoDirExists(t, filepath.Join(data, "caddy", "replayguard"))
}

// TestDiskStoreAcrossReloadAndRestart provisions the handler of a reload
// while the old one still runs (Caddy's order): it takes the open store
// instead of waiting for the directory. Once the last handler is cleaned
// up the store is closed, and a handler provisioned afterwards (a restart)
// finds the nonce and the stored response.
func TestDiskStoreAcrossReloadAndRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := diskConfig()
	old := &Handler{Config: cfg, Disk: disk.Config{Path: dir, LockTimeout: dur(time.Minute)}}
	require.NoError(t, provision(t, old))
	body := []byte(`{"amount":42}`)
	signed := signedRequest(t, testSecret, http.MethodPost, "/orders", "op-1", body)
	var s seen
	w := serve(t, old, clone(t, signed, body), &s)
	require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
	stored := w.Body.String()

	next := cfg
	next.Keys = []replayguard.KeyConfig{{ID: "client-a", Secrets: []string{"new-secret-0123456789", testSecret}}}
	reloaded := &Handler{Config: next, Disk: disk.Config{Path: dir + "/.", LockTimeout: dur(time.Minute)}}
	require.NoError(t, provision(t, reloaded), "the same directory, spelled otherwise")
	assert.Same(t, old.shared, reloaded.shared)
	require.NoError(t, old.Cleanup())
	w = serve(t, reloaded, clone(t, signed, body), &s)
	assert.Equal(t, http.StatusUnauthorized, w.Code)
	assert.Equal(t, "nonce_replayed", problemCode(t, w))

	require.NoError(t, reloaded.Cleanup())
	requireClosed(t, dir)

	restarted := &Handler{Config: cfg, Disk: disk.Config{Path: dir}}
	require.NoError(t, provision(t, restarted))
	w = serve(t, restarted, clone(t, signed, body), &s)
	assert.Equal(t, http.StatusUnauthorized, w.Code)
	assert.Equal(t, "nonce_replayed", problemCode(t, w))
	w = serve(t, restarted, signedRequest(t, testSecret, http.MethodPost, "/orders", "op-1", body), &s)
	assert.Equal(t, http.StatusCreated, w.Code)
	assert.Equal(t, "true", w.Header().Get("Idempotent-Replayed"))
	assert.Equal(t, stored, w.Body.String())
	assert.Equal(t, 1, s.calls, "neither the replay nor the retry ran the next handler")
}

// TestProvisionRefusesADiskPathOpenWithOtherSettings: a handler naming a
// directory another handler holds with other store settings is refused at
// once, naming disk.path, rather than waiting lock_timeout for a close
// that never comes.
func TestProvisionRefusesADiskPathOpenWithOtherSettings(t *testing.T) {
	dir := t.TempDir()
	holder := &Handler{Config: diskConfig(), Disk: disk.Config{Path: dir, LockTimeout: dur(time.Minute)}}
	require.NoError(t, provision(t, holder))

	memoryNonces := diskConfig()
	memoryNonces.Nonce.Store = replayguard.StoreMemory
	for name, h := range map[string]*Handler{
		"other nonce store":   {Config: memoryNonces, Disk: disk.Config{Path: dir, LockTimeout: dur(time.Minute)}},
		"other disk settings": {Config: diskConfig(), Disk: disk.Config{Path: dir, Fsync: boolp(false), LockTimeout: dur(time.Minute)}},
	} {
		t.Run(name, func(t *testing.T) {
			err := provision(t, h)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "disk.path: "+dir+" is open for a handler with other store settings")
			assert.Nil(t, h.shared)
		})
	}
	refs, ok := storePool.References(holder.poolKey)
	require.True(t, ok)
	assert.Equal(t, 1, refs, "the refused handlers took nothing")

	require.NoError(t, holder.Cleanup())
	other := &Handler{Config: memoryNonces, Disk: disk.Config{Path: dir}}
	require.NoError(t, provision(t, other), "once the holder is gone, other settings may open the directory")
	assert.Equal(t, []string{"nonce:memory-exact", "idempotency:disk"}, other.shared.set.Names)
}

func TestProvisionRefusesBadDiskConfigurations(t *testing.T) {
	bloom := diskConfig()
	bloom.Nonce.Mode = replayguard.ModeBloom
	err := provision(t, &Handler{Config: bloom, Disk: disk.Config{Path: t.TempDir()}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nonce.store: mode bloom has no disk form")

	err = provision(t, &Handler{Config: diskConfig(), Disk: disk.Config{Path: t.TempDir(), MaxBytes: -1}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "disk.max_bytes: must be positive")
}

func TestPoolKeyDisk(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	resolved := func(c disk.Config) disk.Config {
		r, err := diskResolved(c)
		require.NoError(t, err)
		return r
	}
	k := func(cfg replayguard.Config, c disk.Config) string {
		key, err := poolKey(cfg.WithDefaults(), redisstore.Section{}, postgres.Config{}, resolved(c))
		require.NoError(t, err)
		return key
	}
	base := k(diskConfig(), disk.Config{Path: dirA})
	assert.Equal(t, base, k(diskConfig(), disk.Config{Path: dirA + "/", Fsync: boolp(true), LockTimeout: dur(disk.DefaultLockTimeout)}),
		"the same directory and the defaults spelled out")
	capped := diskConfig()
	capped.Nonce.MaxEntries = 5
	assert.Equal(t, base, k(capped, disk.Config{Path: dirA}), "the memory store's settings do not shape a disk nonce store")

	assert.NotEqual(t, base, k(diskConfig(), disk.Config{Path: dirB}), "another directory")
	assert.NotEqual(t, base, k(diskConfig(), disk.Config{Path: dirA, Fsync: boolp(false)}), "another disk setting")
	memoryNonces := diskConfig()
	memoryNonces.Nonce.Store = replayguard.StoreMemory
	assert.NotEqual(t, base, k(memoryNonces, disk.Config{Path: dirA}), "another nonce store")

	assert.Equal(t, k(testConfig(), disk.Config{Path: dirA}), k(testConfig(), disk.Config{Path: dirB}),
		"no store is disk: the disk section does not count")
}

// TestDiskMetricsPerDirectory provisions handlers of two directories in
// one configuration, two of them sharing one: each directory's series
// carries its path, once.
func TestDiskMetricsPerDirectory(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	var hs []*Handler
	for _, dir := range []string{dirA, dirA, dirB} {
		h := &Handler{Config: diskConfig(), Disk: disk.Config{Path: dir}}
		require.NoError(t, h.Provision(ctx))
		defer func() { _ = h.Cleanup() }()
		hs = append(hs, h)
	}
	require.Same(t, hs[0].shared, hs[1].shared)

	var s seen
	w := serve(t, hs[0], signedRequest(t, testSecret, http.MethodPost, "/orders", "op-m", []byte(`{}`)), &s)
	require.Equal(t, http.StatusCreated, w.Code, w.Body.String())

	mfs, err := ctx.GetMetricsRegistry().Gather()
	require.NoError(t, err)
	paths := map[string][]string{}
	var commits uint64
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() != "path" {
					continue
				}
				paths[mf.GetName()] = append(paths[mf.GetName()], l.GetValue())
				if mf.GetName() == "replayguard_disk_commit_seconds" && l.GetValue() == dirA {
					commits = m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	for _, name := range []string{"replayguard_disk_file_bytes", "replayguard_disk_live_bytes", "replayguard_disk_reclaimed_total",
		"replayguard_disk_write_errors_total", "replayguard_disk_commit_seconds", "replayguard_disk_commit_batch_size",
		"replayguard_disk_fsync_seconds"} {
		assert.ElementsMatch(t, []string{dirA, dirB}, paths[name], name)
	}
	assert.Positive(t, commits, "the request's writes were committed")
}

// diskCaddyfile is integrationCaddyfile's site with both stores on disk,
// at the default path; extra is appended (another site).
func diskCaddyfile(admin, httpPort, httpsPort int, storage, upstreamAddr string, gen int, extra string) string {
	return fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	https_port %d
	default_bind 127.0.0.1
	skip_install_trust
	auto_https off
	persist_config off
	grace_period 1s
	storage file_system %s
}

http://localhost:%d {
	header X-Config-Generation %d
	replayguard {
		key client-a %s
		nonce {
			store disk
		}
		idempotency {
			methods POST
			store disk
		}
		disk {
			lock_timeout 3s
		}
	}
	uri strip_prefix /api
	reverse_proxy %s
}
%s`, admin, httpPort, httpsPort, storage, httpPort, gen, integrationSecret, upstreamAddr, extra)
}

// adminLoad posts a Caddyfile to the admin endpoint's /load, forcing the
// reload as `caddy reload --force` does.
func adminLoad(t *testing.T, admin int, src string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("http://localhost:%d/load", admin), strings.NewReader(src))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "text/caddyfile")
	req.Header.Set("Cache-Control", "must-revalidate")
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(msg)
}

// startCaddy runs src (a Caddyfile) in this process's Caddy. At the end
// of the test Caddy is stopped and its admin endpoint closed.
func startCaddy(t *testing.T, src string) {
	t.Helper()
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
	require.NoError(t, err)
	require.Empty(t, warnings)
	t.Cleanup(stopCaddy)
	require.NoError(t, caddy.Load(out, true))
}

// stopCaddy stops this process's Caddy and closes its admin endpoint,
// saving no configuration: Caddy's autosave path was fixed from the
// environment at start-up, in the real home directory.
func stopCaddy() {
	_ = caddy.Load([]byte(`{"admin":{"disabled":true,"config":{"persist":false}}}`), true)
	_ = caddy.Stop()
}

// TestCaddyDiskStoresSurviveReloadAndRestart runs Caddy (in process) with
// both stores on disk at the default path under Caddy's data directory: a
// signed request, its replay and an idempotent retry; reloads through the
// admin API (edited, then forced with the same Caddyfile) keep the open
// store; a configuration naming the directory with other store settings is
// refused and the running one goes on; then Caddy stops, which closes the
// store, and a new Caddy on the same directory still refuses the replay
// and answers the retry from the stored response.
func TestCaddyDiskStoresSurviveReloadAndRestart(t *testing.T) {
	skipShort(t, "starts Caddy")
	data := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("XDG_DATA_HOME", data)
	ports := freePorts(t, 4)
	admin, httpPort, httpsPort, otherPort := ports[0], ports[1], ports[2], ports[3]
	up := newUpstream(t)
	storage := t.TempDir()
	upAddr := strings.TrimPrefix(up.URL, "http://")
	dir := filepath.Join(data, "caddy", "replayguard", "default")
	config := func(gen int) string { return diskCaddyfile(admin, httpPort, httpsPort, storage, upAddr, gen, "") }

	startCaddy(t, config(1))
	// A connection per request: a reload or a stop closes the old
	// server's connections, and a POST on one closing is not retried.
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	base := fmt.Sprintf("http://localhost:%d", httpPort)
	first, stored := exercise(t, c, base, integrationSecret, up)
	assert.True(t, disk.Exists(dir), "the default path, under Caddy's data directory")

	// Reloads provision the new handler while the old one holds the
	// directory: it takes the open store (a second open would wait
	// lock_timeout and fail the reload).
	status, msg := adminLoad(t, admin, config(2))
	require.Equal(t, http.StatusOK, status, msg)
	settle(t, c, base, "2")
	replay := afterReload(t, c, base, integrationSecret, up, first, stored)
	assert.Equal(t, "2", replay.header.Get("X-Config-Generation"), "the reloaded configuration answered")
	status, msg = adminLoad(t, admin, config(2))
	require.Equal(t, http.StatusOK, status, msg)
	settle(t, c, base, "2")
	afterReload(t, c, base, integrationSecret, up, first, stored)
	diskMetrics := fmt.Sprintf(`replayguard_disk_file_bytes{path=%q}`, dir)
	assert.Contains(t, adminMetrics(t, admin), diskMetrics)

	// Another site on the same directory with the nonces in memory: other
	// store settings, refused; the running configuration stays.
	conflicting := diskCaddyfile(admin, httpPort, httpsPort, storage, upAddr, 3, fmt.Sprintf(`
http://localhost:%d {
	replayguard {
		key client-a %s
		idempotency {
			store disk
		}
	}
	respond "other"
}
`, otherPort, integrationSecret))
	status, msg = adminLoad(t, admin, conflicting)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, msg, "disk.path: "+dir+" is open for a handler with other store settings")
	settle(t, c, base, "2")
	replay = afterReload(t, c, base, integrationSecret, up, first, stored)
	assert.Equal(t, "2", replay.header.Get("X-Config-Generation"))

	// Stop Caddy: the last handler's cleanup closes the store.
	require.NoError(t, caddy.Stop())
	requireClosed(t, dir)

	// A new Caddy on the same directory.
	startCaddy(t, config(4))
	settle(t, c, base, "4")
	replay = afterReload(t, c, base, integrationSecret, up, first, stored)
	assert.Equal(t, "4", replay.header.Get("X-Config-Generation"), "the new Caddy answered")
	assert.Contains(t, adminMetrics(t, admin), diskMetrics)
}

// adminMetrics returns what the admin endpoint's /metrics serves. (After
// a refused load it serves the refused configuration's registry: Caddy
// replaces the admin endpoint before it provisions the apps.)
func adminMetrics(t *testing.T, admin int) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://localhost:%d/metrics", admin))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}
