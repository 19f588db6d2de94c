// Package pgtest runs throw-away PostgreSQL clusters for tests.
//
// A test package shares one cluster, started on first use and stopped when
// the test binary exits:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestX(t *testing.T) {
//		dsn := pgtest.Start(t) // a database of this test binary's own
//		...
//	}
//
// With REPLAYGUARD_TEST_PG_DSN set, Start returns that DSN and no cluster
// is started. Otherwise the PostgreSQL server binaries are looked up through
// `pg_config --bindir`, then the newest /usr/lib/postgresql/*/bin. When they
// are missing the test is skipped with an install hint, or fails when
// CI=true. As root, the cluster runs as the postgres user (PostgreSQL refuses
// to run as root). Clusters listen on 127.0.0.1 and a free port, run with
// fsync off, and are stopped with `pg_ctl stop -m immediate`; a watchdog
// process stops them should the test binary die without stopping them.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN names the environment variable that points the tests at an
// existing database instead of a cluster of their own.
const EnvDSN = "REPLAYGUARD_TEST_PG_DSN"

// InstallHint tells how to get the PostgreSQL server binaries.
const InstallHint = "install PostgreSQL (apt-get install -y postgresql), or set " + EnvDSN

var shared struct {
	mu      sync.Mutex
	main    bool
	started bool
	cluster *Cluster
	dsn     string
	err     error
}

// Main runs the tests of m and then stops the shared cluster, if one was
// started, and exits. Call it from TestMain.
func Main(m *testing.M) {
	shared.mu.Lock()
	shared.main = true
	shared.mu.Unlock()
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop stops the shared cluster and removes its files. Main calls it.
func Stop() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.cluster != nil {
		shared.cluster.Stop()
		shared.cluster = nil
	}
}

// Start returns the DSN of a database for the calling test binary: the
// REPLAYGUARD_TEST_PG_DSN database when set, else a database created for
// this binary in the shared cluster, which Start starts on first use (the
// package's TestMain must call Main so that the cluster is stopped).
func Start(t testing.TB) string {
	t.Helper()
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		return dsn
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.main {
		t.Fatal("pgtest: call pgtest.Main(m) from TestMain so that the shared cluster is stopped")
	}
	if !shared.started {
		shared.started = true
		shared.dsn, shared.cluster, shared.err = startShared()
	}
	if shared.err != nil {
		fail(t, shared.err)
	}
	return shared.dsn
}

func startShared() (string, *Cluster, error) {
	c, err := newCluster()
	if err != nil {
		return "", nil, err
	}
	db := "rg_" + strings.Trim(nonIdent.ReplaceAllString(strings.ToLower(filepath.Base(os.Args[0])), "_"), "_")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.CreateDatabase(ctx, db); err != nil {
		c.Stop()
		return "", nil, err
	}
	return c.DSN(db), c, nil
}

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// errMissing marks a failure to find the PostgreSQL binaries.
var errMissing = errors.New("pgtest: PostgreSQL server binaries not found")

func fail(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, errMissing) && os.Getenv("CI") != "true" {
		t.Skipf("%v; %s", err, InstallHint)
	}
	t.Fatal(err)
}

// Cluster is a running PostgreSQL cluster of its own: data directory,
// socket directory and log in one temporary directory.
type Cluster struct {
	// Port is the TCP port on 127.0.0.1.
	Port int

	bin      string
	dir      string
	asUser   *user.User // non-nil when running as root
	watchdog *exec.Cmd
	stopOnce sync.Once
}

// NewCluster starts a cluster of its own for t, stopped by t's cleanup or
// earlier by Stop (to test a database going away). It ignores
// REPLAYGUARD_TEST_PG_DSN.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	c, err := newCluster()
	if err != nil {
		fail(t, err)
	}
	t.Cleanup(c.Stop)
	return c
}

// DSN returns the URL of database db on the cluster, as user postgres.
func (c *Cluster) DSN(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// CreateDatabase creates database name on the cluster.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("pgtest: connect: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	return nil
}

// Stop stops the cluster at once (pg_ctl stop -m immediate) and removes its
// files. Clients see their connections drop and new ones refused.
func (c *Cluster) Stop() {
	c.stopOnce.Do(func() {
		_, _ = c.run("pg_ctl", "-D", c.dataDir(), "stop", "-m", "immediate", "-w")
		if c.watchdog != nil {
			_ = c.watchdog.Process.Kill()
			_ = c.watchdog.Wait()
		}
		_ = os.RemoveAll(c.dir)
	})
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }

func newCluster() (*Cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("pgtest: running as root needs the postgres user to run the cluster as: %w", err)
		}
		c.asUser = u
	}
	if c.dir, err = os.MkdirTemp("", "pgtest-"); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if err := c.start(); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start() error {
	if c.asUser != nil {
		uid, _ := strconv.Atoi(c.asUser.Uid)
		gid, _ := strconv.Atoi(c.asUser.Gid)
		if err := os.Chown(c.dir, uid, gid); err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
	}
	if out, err := c.run("initdb", "-D", c.dataDir(), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"); err != nil {
		return fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			return err
		}
		opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories=%s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", port, c.dir)
		out, err := c.run("pg_ctl", "-D", c.dataDir(), "-l", filepath.Join(c.dir, "log"), "-w", "-t", "60", "-o", opts, "start")
		if err != nil {
			log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
			lastErr = fmt.Errorf("pgtest: pg_ctl start: %w\n%s\n%s", err, out, log)
			continue
		}
		c.Port = port
		c.startWatchdog()
		return c.waitReady()
	}
	return lastErr
}

// startWatchdog starts a shell that stops the cluster and removes its files
// once this process is gone, so that a test binary killed by a timeout or a
// panic leaves nothing behind.
func (c *Cluster) startWatchdog() {
	stop := shellQuote(c.command("pg_ctl", "-D", c.dataDir(), "stop", "-m", "immediate", "-w"))
	script := fmt.Sprintf("while kill -0 %d 2>/dev/null; do sleep 1; done; %s >/dev/null 2>&1; rm -rf %s",
		os.Getpid(), stop, shellQuote([]string{c.dir}))
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.SysProcAttr = detached()
	if err := cmd.Start(); err == nil {
		c.watchdog = cmd
	}
}

func (c *Cluster) waitReady() error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, c.DSN("postgres"))
		if err == nil {
			err = conn.Ping(ctx)
			_ = conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgtest: cluster on port %d not accepting connections: %w", c.Port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// command returns the argv running the PostgreSQL binary name, as the
// postgres user when this process is root.
func (c *Cluster) command(name string, args ...string) []string {
	argv := append([]string{filepath.Join(c.bin, name)}, args...)
	if c.asUser == nil {
		return argv
	}
	if runuser, err := exec.LookPath("runuser"); err == nil {
		return append([]string{runuser, "-u", c.asUser.Username, "--"}, argv...)
	}
	return []string{"su", c.asUser.Username, "-s", "/bin/sh", "-c", shellQuote(argv)}
}

func (c *Cluster) run(name string, args ...string) ([]byte, error) {
	argv := c.command(name, args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	// The postgres user may not be able to read the test's directory.
	cmd.Dir = c.dir
	return cmd.CombinedOutput()
}

func shellQuote(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// binDir finds the directory holding initdb and pg_ctl.
func binDir() (string, error) {
	var candidates []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	candidates = append(candidates, dirs...)
	for _, d := range candidates {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("%w (looked in pg_config --bindir and /usr/lib/postgresql/*/bin)", errMissing)
}

func version(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func isExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}
