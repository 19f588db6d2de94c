package disk

import (
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// retryInterval is how often a write refused for want of room is tried
// again.
const retryInterval = 100 * time.Millisecond

// roomFS is the file system the engine writes through. The engine treats
// any failed write of its log as the end of the store (its commit pipeline
// cannot go on), where a gateway should answer store_unavailable while the
// disk is full or read-only and carry on once it is not. So a write or
// preallocation refused for want of room or of write access — ENOSPC,
// EDQUOT, EFBIG (a file size limit), EROFS — is not returned to the
// engine: it is tried again every retryInterval until it succeeds, while
// the store reports the error (onRefused; Ping fails, requests time out
// with store_unavailable). Once the store closes, the error is returned.
// Other errors, and every failed sync, are returned as they are: after a
// failed fsync the kernel may have dropped the pages it could not write,
// so trying again could report success for data that is gone.
//
// Files are created 0600: they hold stored responses.
type roomFS struct {
	vfs.FS
	closing   atomic.Bool
	onRefused func(error)
	onWritten func()
	refused   atomic.Bool
	// observeSync receives the time of each sync of the write-ahead
	// log, the one a commit waits for.
	observeSync func(time.Duration)
}

func (fs *roomFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	var f vfs.File
	err := fs.retry(func() (err error) {
		f, err = fs.FS.Create(name, category)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(name, 0o600); err != nil {
		_ = f.Close()
		return nil, err
	}
	return fs.wrap(name, f), nil
}

func (fs *roomFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, category, opts...)
	if err != nil {
		return nil, err
	}
	return fs.wrap(name, f), nil
}

func (fs *roomFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	if err != nil {
		return nil, err
	}
	return fs.wrap(newname, f), nil
}

func (fs *roomFS) wrap(name string, f vfs.File) vfs.File {
	return &roomFile{File: f, fs: fs, log: strings.HasSuffix(name, ".log")}
}

// retry runs op until it succeeds, fails otherwise than for want of room,
// or the store closes.
func (fs *roomFS) retry(op func() error) error {
	for {
		err := op()
		if err == nil {
			if fs.refused.Load() {
				fs.refused.Store(false)
				fs.onWritten()
			}
			return nil
		}
		if !noRoom(err) || fs.closing.Load() {
			return err
		}
		fs.refused.Store(true)
		fs.onRefused(err)
		time.Sleep(retryInterval)
	}
}

// noRoom reports an error that ends once room is made or the file system
// is writable again.
func noRoom(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) ||
		errors.Is(err, syscall.EFBIG) || errors.Is(err, syscall.EROFS)
}

type roomFile struct {
	vfs.File
	fs  *roomFS
	log bool
	mu  sync.Mutex // a write and its retries, in order
}

func (f *roomFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	written := 0
	err := f.fs.retry(func() error {
		n, err := f.File.Write(p[written:])
		written += n
		return err
	})
	return written, err
}

func (f *roomFile) WriteAt(p []byte, off int64) (int, error) {
	written := 0
	err := f.fs.retry(func() error {
		n, err := f.File.WriteAt(p[written:], off+int64(written))
		written += n
		return err
	})
	return written, err
}

func (f *roomFile) Preallocate(offset, length int64) error {
	return f.fs.retry(func() error { return f.File.Preallocate(offset, length) })
}

func (f *roomFile) Sync() error { return f.timed(f.File.Sync) }

func (f *roomFile) SyncData() error { return f.timed(f.File.SyncData) }

func (f *roomFile) SyncTo(length int64) (bool, error) {
	var full bool
	err := f.timed(func() (err error) {
		full, err = f.File.SyncTo(length)
		return err
	})
	return full, err
}

func (f *roomFile) timed(sync func() error) error {
	if !f.log || f.fs.observeSync == nil {
		return sync()
	}
	start := time.Now()
	err := sync()
	f.fs.observeSync(time.Since(start))
	return err
}
