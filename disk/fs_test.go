package disk

import (
	"context"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/nonce"
)

// fullFS refuses every write with ENOSPC while full is set, as a full
// disk does.
type fullFS struct {
	vfs.FS
	full *atomic.Bool
}

func (fs fullFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fullFile{f, fs.full}, err
}

func (fs fullFS) ReuseForWrite(old, name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(old, name, c)
	return fullFile{f, fs.full}, err
}

type fullFile struct {
	vfs.File
	full *atomic.Bool
}

func (f fullFile) Write(p []byte) (int, error) {
	if f.full.Load() {
		return 0, syscall.ENOSPC
	}
	return f.File.Write(p)
}

func (f fullFile) WriteAt(p []byte, off int64) (int, error) {
	if f.full.Load() {
		return 0, syscall.ENOSPC
	}
	return f.File.WriteAt(p, off)
}

// TestFullDiskIsUnavailableThenRecovers: while the disk refuses writes,
// calls fail as unavailable after the timeout, Ping fails and the
// refusals are counted, the store stays up; once room is made, writes go
// on and everything acknowledged is there after a reopen.
func TestFullDiskIsUnavailableThenRecovers(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var full atomic.Bool
	fsOpt := func(o *options) { o.fs = fullFS{vfs.Default, &full} }
	db, err := Open(dir, fsOpt, WithTimeout(300*time.Millisecond))
	require.NoError(t, err)
	entry := func() nonce.Entry {
		return nonce.Entry{Scope: "k", Key: uuid.NewString(), Expires: time.Now().Add(time.Hour)}
	}
	before := entry()
	require.NoError(t, db.Nonces().Add(ctx, before))

	full.Store(true)
	during := entry()
	err = db.Nonces().Add(ctx, during)
	require.ErrorIs(t, err, nonce.ErrUnavailable)
	require.ErrorIs(t, err, ErrTimeout)
	require.Eventually(t, func() bool { return db.Ping(ctx) != nil }, 5*time.Second, 20*time.Millisecond)
	assert.Contains(t, db.Ping(ctx).Error(), "no space left on device")
	assert.Positive(t, db.Stats().WriteErrors)
	require.ErrorIs(t, db.Nonces().Add(ctx, before), nonce.ErrReplayed, "what was stored still answers")

	full.Store(false)
	require.Eventually(t, func() bool { return db.Ping(ctx) == nil }, 5*time.Second, 50*time.Millisecond)
	after := entry()
	require.NoError(t, db.Nonces().Add(ctx, after))
	require.NoError(t, db.Close())

	db = open(t, dir)
	require.ErrorIs(t, db.Nonces().Add(ctx, before), nonce.ErrReplayed)
	require.ErrorIs(t, db.Nonces().Add(ctx, after), nonce.ErrReplayed)
	// The write that timed out during the outage went through once room
	// was made: its caller was told unavailable, so either answer is
	// safe, and it is now a replay.
	require.ErrorIs(t, db.Nonces().Add(ctx, during), nonce.ErrReplayed)
}
