package disk

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/nonce"
)

// fixture is a store with some content, closed, and the bytes of its file.
type fixture struct {
	file     []byte
	pageSize int
	used     int64 // bytes the pages in use reach (the high-water mark)
	midPage  int64 // a leaf page of the entries bucket, reachable from the root
	nextPage int64 // the leaf page before midPage in the same branch page
	nonces   []nonce.Entry
	records  map[string][]byte // key -> stored body
}

var (
	fixtureOnce sync.Once
	fixtureVal  *fixture
	fixtureErr  error
)

// storeFixture builds, once per test binary, a store holding 3,000 nonces
// and 60 completed records with bodies of 1–4 KiB, so that its file has
// many pages, some of them overflow pages.
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
	f := &fixture{records: map[string][]byte{}}
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
	// A last commit holding no content: both meta pages then describe a
	// tree holding all of it, whichever of the two bbolt falls back to.
	if err := db.Ping(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	file := db.File()
	if err := db.Close(); err != nil {
		return nil, err
	}
	if f.file, err = os.ReadFile(file); err != nil {
		return nil, err
	}

	b, err := bolt.Open(file, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	f.pageSize = b.Info().PageSize
	err = b.View(func(tx *bolt.Tx) error {
		f.used = tx.Size()
		// Descend from the entries bucket's root through middle children
		// to a branch page of leaves, and take two of its leaves. Page
		// header: id (8), flags (2: 1 branch, 2 leaf), count (2),
		// overflow (4); then branch elements of pos (4), ksize (4),
		// pgid (8).
		pg := func(id int64) []byte { return f.file[id*int64(f.pageSize):] }
		child := func(p []byte, i int) int64 { return int64(binary.LittleEndian.Uint64(p[16+16*i+8:])) }
		for id := int64(tx.Bucket(bucketEntries).Root()); ; {
			p := pg(id)
			if flags := binary.LittleEndian.Uint16(p[8:]); flags != 0x01 {
				return fmt.Errorf("page %d has flags %#x, want a branch page", id, flags)
			}
			i := int(binary.LittleEndian.Uint16(p[10:])) / 2
			if binary.LittleEndian.Uint16(pg(child(p, i))[8:]) == 0x02 {
				f.midPage, f.nextPage = child(p, i), child(p, i-1)
				break
			}
			id = child(p, i)
		}
		for _, id := range []int64{f.midPage, f.nextPage} {
			if overflow := binary.LittleEndian.Uint32(f.file[id*int64(f.pageSize)+12:]); overflow != 0 {
				return fmt.Errorf("page %d has %d overflow pages", id, overflow)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if f.pageSize != os.Getpagesize() {
		return nil, fmt.Errorf("page size %d, the OS's is %d", f.pageSize, os.Getpagesize())
	}
	if f.used < 100*int64(f.pageSize) || f.midPage < 2 || f.midPage*int64(f.pageSize) >= f.used {
		return nil, fmt.Errorf("unexpected layout: %d bytes used, middle page %d", f.used, f.midPage)
	}
	return f, nil
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

func truncateTo(n func(f *fixture) int64) func(f *fixture, b []byte) []byte {
	return func(f *fixture, b []byte) []byte { return b[:n(f)] }
}

// overwrite replaces length bytes at page with fill's output.
func overwrite(page func(f *fixture) int64, length func(f *fixture) int, fill func(p []byte)) func(f *fixture, b []byte) []byte {
	return func(f *fixture, b []byte) []byte {
		off := page(f) * int64(f.pageSize)
		fill(b[off : off+int64(length(f))])
		return b
	}
}

func garbage(p []byte) {
	rnd := rand.New(rand.NewChaCha8([32]byte{2}))
	for i := range p {
		p[i] = byte(rnd.Uint32())
	}
}

func zero(p []byte) { clear(p) }

func onePage(f *fixture) int            { return f.pageSize }
func twoPages(f *fixture) int           { return 2 * f.pageSize }
func page(n int64) func(*fixture) int64 { return func(*fixture) int64 { return n } }
func middlePage(f *fixture) int64       { return f.midPage }

// TestOpenRefusesDamagedFile damages the file of a store with content on
// the file system and opens it: a damaged file is refused with ErrDamaged,
// naming the file and the recovery step, without crashing the process,
// changing the file or keeping anything held, so that the directory opens
// again once a good file is back; damage bbolt recovers from opens with
// the content intact.
func TestOpenRefusesDamagedFile(t *testing.T) {
	f := storeFixture(t)
	foreign, foreignNoFreelist := foreignBolt(t, false), foreignBolt(t, true)
	tests := []struct {
		name   string
		damage func(f *fixture, b []byte) []byte
		opens  bool // the store opens with all its content
		empty  bool // the store opens as a new, empty one
	}{
		{name: "truncated to half", damage: truncateTo(func(f *fixture) int64 { return f.used / 2 })},
		{name: "truncated to just under the last page", damage: truncateTo(func(f *fixture) int64 { return f.used - 1 })},
		{name: "last page cut off", damage: truncateTo(func(f *fixture) int64 { return f.used - int64(f.pageSize) })},
		{name: "truncated to one page", damage: truncateTo(func(f *fixture) int64 { return int64(f.pageSize) })},
		{name: "truncated to 100 bytes", damage: truncateTo(func(*fixture) int64 { return 100 })},
		{name: "garbage over a page in the middle", damage: overwrite(middlePage, onePage, garbage)},
		{name: "a page in the middle zeroed", damage: overwrite(middlePage, onePage, zero)},
		{name: "garbage over a page in the middle, its header kept", damage: func(f *fixture, b []byte) []byte {
			off := f.midPage * int64(f.pageSize)
			garbage(b[off+16 : off+int64(f.pageSize)])
			return b
		}},
		{name: "a page in the middle holds its neighbour's content", damage: func(f *fixture, b []byte) []byte {
			// A misdirected write: a well-formed page, in the wrong place.
			off, next := f.midPage*int64(f.pageSize), f.nextPage*int64(f.pageSize)
			copy(b[off+8:off+int64(f.pageSize)], b[next+8:next+int64(f.pageSize)])
			return b
		}},
		{name: "garbage over both meta pages", damage: overwrite(page(0), twoPages, garbage)},
		{name: "both meta pages zeroed", damage: overwrite(page(0), twoPages, zero)},
		{name: "garbage over the first page", damage: overwrite(page(0), onePage, garbage), opens: true},
		{name: "meta page 0 zeroed", damage: overwrite(page(0), onePage, zero), opens: true},
		{name: "meta page 1 zeroed", damage: overwrite(page(1), onePage, zero), opens: true},
		{name: "a bbolt database not ours", damage: func(*fixture, []byte) []byte { return bytes.Clone(foreign) }},
		{name: "a bbolt database not ours, its free list not stored", damage: func(*fixture, []byte) []byte { return bytes.Clone(foreignNoFreelist) }},
		{name: "random bytes", damage: func(f *fixture, b []byte) []byte { garbage(b); return b }},
		{name: "all zero bytes", damage: func(f *fixture, b []byte) []byte { return make([]byte, len(b)) }},
		{name: "empty file", damage: func(*fixture, []byte) []byte { return []byte{} }, empty: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			require.NoError(t, os.WriteFile(path, f.file, 0o600))
			db, err := openWithin(t, dir, WithLockTimeout(2*time.Second))
			require.NoError(t, err, "the good file opens")
			require.Equal(t, path, db.File())
			require.ErrorIs(t, db.Nonces().Add(context.Background(), f.nonces[0]), nonce.ErrReplayed)
			require.NoError(t, db.Close())

			damaged := tt.damage(f, bytes.Clone(f.file))
			require.NoError(t, os.WriteFile(path, damaged, 0o600))
			db, err = openWithin(t, dir, WithLockTimeout(2*time.Second))
			switch {
			case tt.opens:
				require.NoError(t, err)
				requireContent(t, db, f)
				require.NoError(t, db.Close())
			case tt.empty:
				require.NoError(t, err)
				require.NoError(t, db.Nonces().Add(context.Background(), f.nonces[0]), "a new store")
				require.NoError(t, db.Close())
			default:
				if err == nil {
					_ = db.Close()
				}
				require.ErrorIs(t, err, ErrDamaged)
				t.Log(err)
				require.Contains(t, err.Error(), path)
				require.Contains(t, err.Error(), "move that directory aside")
				got, rerr := os.ReadFile(path)
				require.NoError(t, rerr)
				require.True(t, bytes.Equal(damaged, got), "the refused file is left as it was")
			}

			// Nothing of the attempt is held: the directory opens again
			// with a good file and still knows an old nonce.
			require.NoError(t, os.WriteFile(path, f.file, 0o600))
			db, err = openWithin(t, dir, WithLockTimeout(2*time.Second))
			require.NoError(t, err)
			defer db.Close()
			require.ErrorIs(t, db.Nonces().Add(context.Background(), f.nonces[len(f.nonces)/2]), nonce.ErrReplayed)
			require.NoError(t, db.Close())
		})
	}
}

// foreignBolt returns the file of a valid bbolt database holding a
// bucket "foo" and nothing of a replayguard store, written with bbolt's
// default options or, with noFreelistSync, without its free list as a
// store does.
func foreignBolt(t *testing.T, noFreelistSync bool) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "other.db")
	b, err := bolt.Open(path, 0o600, &bolt.Options{NoFreelistSync: noFreelistSync})
	require.NoError(t, err)
	require.NoError(t, b.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucket([]byte("foo"))
		if err != nil {
			return err
		}
		return bk.Put([]byte("bar"), []byte("baz"))
	}))
	require.NoError(t, b.Close())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return data
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
	// bbolt polls the lock every 50 ms and gives up one poll early.
	require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond, "it waited for the lock")

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
	t.Run("store file is a directory", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.Mkdir(filepath.Join(dir, FileName), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(dir, FileName, "x"), []byte("x"), 0o600))
		_, err := openWithin(t, dir, WithLockTimeout(time.Second))
		require.Error(t, err)
		require.NotErrorIs(t, err, ErrDamaged)
		require.NotErrorIs(t, err, ErrLocked)
		require.Contains(t, err.Error(), filepath.Join(dir, FileName))
	})
}

// FuzzWalkFile: the walk of a damaged file reads it only through ReadAt
// and never panics or reads out of bounds, whatever the bytes.
func FuzzWalkFile(f *testing.F) {
	dir := f.TempDir()
	db, err := Open(dir)
	require.NoError(f, err)
	ctx := context.Background()
	for i := 0; i < 200; i++ {
		require.NoError(f, db.Nonces().Add(ctx, nonce.Entry{Scope: "k", Key: uuid.NewString(), Expires: time.Now().Add(time.Hour)}))
	}
	require.NoError(f, db.Close())
	good, err := os.ReadFile(filepath.Join(dir, FileName))
	require.NoError(f, err)
	f.Add(good, 0, []byte{})
	f.Add(good, 2*4096+20, []byte{0xff, 0xff, 0xff, 0xff})
	f.Add(good[:3*4096], 0, []byte{})
	f.Fuzz(func(t *testing.T, file []byte, at int, patch []byte) {
		b := bytes.Clone(file)
		if at >= 0 && at < len(b) {
			copy(b[at:], patch)
		}
		_ = walkFile(bytes.NewReader(b), int64(len(b)), 4096)
	})
}
