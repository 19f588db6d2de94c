package disk

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/nonce"
)

// fixture is a closed store with some content: its files, by name.
type fixture struct {
	files   map[string][]byte
	nonces  []nonce.Entry
	records map[string][]byte // key -> stored body
}

var (
	fixtureOnce sync.Once
	fixtureVal  *fixture
	fixtureErr  error
)

// storeFixture builds, once per test binary, a store holding 3,000 nonces
// and 60 completed records with bodies of 1–4 KiB, flushed to the
// engine's tables (so that its log holds nothing the tables do not).
func storeFixture(t *testing.T) *fixture {
	t.Helper()
	fixtureOnce.Do(func() { fixtureVal, fixtureErr = buildFixture() })
	require.NoError(t, fixtureErr)
	return fixtureVal
}

func buildFixture() (*fixture, error) {
	dir, err := os.MkdirTemp("", "replayguard-damage-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	db, err := Open(dir, WithFsync(false))
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	f := &fixture{records: map[string][]byte{}, files: map[string][]byte{}}
	rnd := rand.New(rand.NewChaCha8([32]byte{1}))
	exp := time.Now().Add(24 * time.Hour)
	for i := 0; i < 3000; i++ {
		e := nonce.Entry{Scope: fmt.Sprintf("key-%d", i%7), Key: uuid.NewString(), Expires: exp}
		if err := db.Nonces().Add(ctx, e); err != nil {
			_ = db.Close()
			return nil, err
		}
		f.nonces = append(f.nonces, e)
	}
	for i := 0; i < 60; i++ {
		key := fmt.Sprintf("key-%d\x00%s", i%7, uuid.NewString())
		body := make([]byte, 1024+rnd.IntN(3*1024+1))
		for j := range body {
			body[j] = byte(rnd.Uint32())
		}
		c, err := db.Records().Claim(ctx, key, sha256.Sum256([]byte(key)), time.Minute)
		if err == nil {
			err = db.Records().Complete(ctx, key, c.Token, &idempotency.Response{Status: 200, Body: body}, 24*time.Hour)
		}
		if err != nil {
			_ = db.Close()
			return nil, err
		}
		f.records[key] = body
	}
	if err := db.pdb.Flush(); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := db.Close(); err != nil {
		return nil, err
	}
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range names {
		if e.Name() == "LOCK" || !e.Type().IsRegular() {
			continue
		}
		if f.files[e.Name()], err = os.ReadFile(filepath.Join(dir, e.Name())); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// write lays the fixture's files out in a new directory, damage applied.
func (f *fixture) write(t *testing.T, damage func(files map[string][]byte)) string {
	t.Helper()
	files := map[string][]byte{}
	for name, b := range f.files {
		files[name] = bytes.Clone(b)
	}
	damage(files)
	dir := filepath.Join(t.TempDir(), "store")
	require.NoError(t, os.Mkdir(dir, 0o700))
	for name, b := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o600))
	}
	return dir
}

// named returns the fixture's file names with suffix (or prefix), sorted.
func named(files map[string][]byte, match func(string) bool) []string {
	var out []string
	for name := range files {
		if match(name) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func isTable(name string) bool    { return strings.HasSuffix(name, ".sst") }
func isManifest(name string) bool { return strings.HasPrefix(name, "MANIFEST-") }
func isMarker(name string) bool   { return strings.HasPrefix(name, "marker.") }
func isOptions(name string) bool  { return strings.HasPrefix(name, "OPTIONS-") }

// eachTable applies fn to every table file.
func eachTable(fn func(b []byte) []byte) func(files map[string][]byte) {
	return func(files map[string][]byte) {
		for _, name := range named(files, isTable) {
			files[name] = fn(files[name])
		}
	}
}

func garbage(p []byte) {
	rnd := rand.New(rand.NewChaCha8([32]byte{2}))
	for i := range p {
		p[i] = byte(rnd.Uint32())
	}
}

// TestOpenRefusesDamagedStore: a store whose files are damaged, missing or
// not a replayguard store's fails Open with ErrDamaged, naming the
// directory and the recovery step — never an empty store in its place —
// and does not take the process down.
func TestOpenRefusesDamagedStore(t *testing.T) {
	f := storeFixture(t)
	require.NotEmpty(t, named(f.files, isTable), "the fixture has tables")
	tests := []struct {
		name   string
		damage func(files map[string][]byte)
		opens  bool // the store opens with all its content
	}{
		{name: "nothing damaged", damage: func(map[string][]byte) {}, opens: true},
		{name: "a table truncated to half", damage: eachTable(func(b []byte) []byte { return b[:len(b)/2] })},
		{name: "a table's last byte cut off", damage: eachTable(func(b []byte) []byte { return b[:len(b)-1] })},
		{name: "a table truncated to nothing", damage: eachTable(func([]byte) []byte { return nil })},
		{name: "a byte flipped in a table's data", damage: eachTable(func(b []byte) []byte { b[len(b)/3] ^= 0x40; return b })},
		{name: "garbage over a table's first KiB", damage: eachTable(func(b []byte) []byte { garbage(b[:1024]); return b })},
		{name: "a table zeroed", damage: eachTable(func(b []byte) []byte { return make([]byte, len(b)) })},
		{name: "a table missing", damage: func(files map[string][]byte) {
			for _, name := range named(files, isTable) {
				delete(files, name)
			}
		}},
		{name: "the manifest missing", damage: func(files map[string][]byte) {
			for _, name := range named(files, isManifest) {
				delete(files, name)
			}
		}},
		{name: "the manifest truncated to 10 bytes", damage: func(files map[string][]byte) {
			for _, name := range named(files, isManifest) {
				files[name] = files[name][:10]
			}
		}},
		{name: "garbage over the manifest", damage: func(files map[string][]byte) {
			for _, name := range named(files, isManifest) {
				garbage(files[name])
			}
		}},
		{name: "the marker naming the manifest missing", damage: func(files map[string][]byte) {
			for _, name := range named(files, isMarker) {
				delete(files, name)
			}
		}},
		{name: "the options file garbage", damage: func(files map[string][]byte) {
			for _, name := range named(files, isOptions) {
				files[name] = []byte("[Options]\n garbage=\x00\xff\n[")
			}
		}},
		{name: "every file but the tables missing", damage: func(files map[string][]byte) {
			for name := range files {
				if !isTable(name) {
					delete(files, name)
				}
			}
		}},
		{name: "a file of the earlier one-file format beside", damage: func(files map[string][]byte) {
			files[legacyFile] = []byte("an earlier store")
		}},
		{name: "an earlier one-file store alone", damage: func(files map[string][]byte) {
			clear(files)
			files[legacyFile] = []byte("an earlier store")
		}},
		{name: "a stray file alone", damage: func(files map[string][]byte) {
			clear(files)
			files["notes.txt"] = []byte("not a store")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := f.write(t, tt.damage)
			db, err := openWithin(t, dir, WithLockTimeout(time.Second))
			if tt.opens {
				require.NoError(t, err)
				defer db.Close()
				requireContent(t, db, f)
				return
			}
			if err == nil {
				_ = db.Close()
			}
			require.ErrorIs(t, err, ErrDamaged)
			require.Contains(t, err.Error(), dir)
			require.Contains(t, err.Error(), "move that")
			require.Contains(t, err.Error(), "refuses to start rather than start empty")
		})
	}
}

// TestOpenRefusesForeignStore: an engine store that is not a replayguard
// store is refused, not adopted.
func TestOpenRefusesForeignStore(t *testing.T) {
	dir := t.TempDir()
	p, err := pebble.Open(dir, &pebble.Options{})
	require.NoError(t, err)
	require.NoError(t, p.Set([]byte("somebody else's"), []byte("data"), pebble.Sync))
	require.NoError(t, p.Close())
	_, err = openWithin(t, dir, WithLockTimeout(time.Second))
	require.ErrorIs(t, err, ErrDamaged)
	require.Contains(t, err.Error(), "not a replayguard store")
}

// openWithin runs Open, failing the test rather than hanging when it does
// not return.
func openWithin(t *testing.T, dir string, opts ...Option) (*DB, error) {
	t.Helper()
	type result struct {
		db  *DB
		err error
	}
	done := make(chan result, 1)
	go func() {
		db, err := Open(dir, opts...)
		done <- result{db, err}
	}()
	select {
	case r := <-done:
		return r.db, r.err
	case <-time.After(time.Minute):
		t.Fatal("Open did not return within a minute")
		return nil, nil
	}
}

// requireContent checks that every nonce of the fixture is a replay and
// every record answers its stored response.
func requireContent(t *testing.T, db *DB, f *fixture) {
	t.Helper()
	ctx := context.Background()
	for _, e := range f.nonces {
		require.ErrorIs(t, db.Nonces().Add(ctx, e), nonce.ErrReplayed)
	}
	for key, body := range f.records {
		c, err := db.Records().Claim(ctx, key, sha256.Sum256([]byte(key)), time.Minute)
		require.NoError(t, err)
		require.False(t, c.Acquired, "record %q", key)
		require.Equal(t, idempotency.StateCompleted, c.Existing.State)
		require.Equal(t, body, c.Existing.Response.Body)
	}
}

// holdEnv names the directory TestHelperHoldsStore holds in a child
// process.
const holdEnv = "REPLAYGUARD_DISK_TEST_HOLD_DIR"

// TestHelperHoldsStore is the child process of TestOpenLockedByOtherProcess:
// it opens the store of the directory in holdEnv, prints "ready" and holds
// it until its stdin closes. Without holdEnv it does nothing.
func TestHelperHoldsStore(t *testing.T) {
	dir := os.Getenv(holdEnv)
	if dir == "" {
		return
	}
	db, err := Open(dir, WithLockTimeout(5*time.Second))
	require.NoError(t, err)
	defer db.Close()
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	require.NoError(t, db.Close())
}

// TestOpenLockedByOtherProcess: a store another process holds fails Open
// with ErrLocked after the lock timeout, pointing to Redis or PostgreSQL
// for several instances, and opens once that process is gone.
func TestOpenLockedByOtherProcess(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldsStore$", "-test.count=1")
	cmd.Env = append(os.Environ(), holdEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	waited := make(chan error, 1)
	t.Cleanup(func() {
		select {
		case <-waited:
		default:
			_ = cmd.Process.Kill()
			<-waited
		}
	})

	ready := make(chan struct{})
	var out bytes.Buffer
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if !signalled && strings.TrimSpace(sc.Text()) == "ready" {
				signalled = true
				close(ready)
			}
		}
		// Wait only after stdout is read to its end.
		waited <- cmd.Wait()
		close(waited)
	}()
	select {
	case <-ready:
	case <-waited:
		t.Fatalf("the child exited before it held the store:\n%s%s", out.String(), stderr.String())
	case <-time.After(time.Minute):
		t.Fatalf("the child did not hold the store within a minute:\n%s", stderr.String())
	}

	start := time.Now()
	db, err := Open(dir, WithLockTimeout(300*time.Millisecond))
	if err == nil {
		_ = db.Close()
	}
	require.ErrorIs(t, err, ErrLocked)
	require.NotErrorIs(t, err, ErrDamaged)
	require.Contains(t, err.Error(), "another process holds it")
	require.Contains(t, err.Error(), "Redis")
	require.Contains(t, err.Error(), dir)
	require.GreaterOrEqual(t, time.Since(start), 250*time.Millisecond, "it waited for the lock")

	require.NoError(t, stdin.Close())
	select {
	case err := <-waited:
		require.NoError(t, err, "the child's test:\n%s", stderr.String())
	case <-time.After(time.Minute):
		t.Fatal("the child did not exit within a minute of its stdin closing")
	}

	db, err = Open(dir, WithLockTimeout(2*time.Second))
	require.NoError(t, err)
	require.NoError(t, db.Close())
}

// TestOpenCannotCreateFile: a directory where the store cannot be made
// fails Open with an error naming the path, not ErrDamaged or ErrLocked.
func TestOpenCannotCreateFile(t *testing.T) {
	t.Run("directory is a regular file", func(t *testing.T) {
		notDir := filepath.Join(t.TempDir(), "store")
		require.NoError(t, os.WriteFile(notDir, []byte("not a directory"), 0o600))
		_, err := openWithin(t, notDir, WithLockTimeout(time.Second))
		require.Error(t, err)
		require.NotErrorIs(t, err, ErrDamaged)
		require.NotErrorIs(t, err, ErrLocked)
		require.Contains(t, err.Error(), notDir)
		_, err = openWithin(t, filepath.Join(notDir, "sub"), WithLockTimeout(time.Second))
		require.Error(t, err)
		require.NotErrorIs(t, err, ErrDamaged)
	})
	t.Run("lock file cannot be made", func(t *testing.T) {
		// Not another process's lock: fails at once, not after the lock
		// timeout, and does not say the directory is held.
		dir := t.TempDir()
		require.NoError(t, os.Mkdir(filepath.Join(dir, "LOCK"), 0o700))
		start := time.Now()
		_, err := openWithin(t, dir, WithLockTimeout(5*time.Second))
		require.Error(t, err)
		require.NotErrorIs(t, err, ErrLocked)
		require.NotErrorIs(t, err, ErrDamaged)
		require.Contains(t, err.Error(), dir)
		require.Less(t, time.Since(start), 2*time.Second, "it did not wait for a lock")
	})
}
