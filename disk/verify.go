package disk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// verify walks an existing file before bbolt opens it for writing, and
// reports what bbolt could not survive as damage.
//
// Opening a file for writing, bbolt walks every page to rebuild its free
// list and reports what it finds wrong by panicking on a goroutine of its
// own, which no recover reaches: a well-formed page in the wrong place, or
// keys out of order, end the process. A page failing its assertions, or a
// fault, does panic on the opening goroutine, but then leaves the file
// mapped and locked until the process exits. So the file is walked here
// first, with every check bbolt makes of the tree, reading it with ReadAt
// rather than through a memory map, under a shared lock that keeps other
// processes from writing meanwhile (a read-only bbolt handle, which reads
// no more than the meta pages).
func (db *DB) verify() error {
	ro, err := bolt.Open(db.file, 0o600, &bolt.Options{ReadOnly: true, Timeout: db.cfg.lockTimeout})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return db.locked("another process holds it")
	case err != nil:
		return db.damaged(err)
	}
	defer closeQuietly(ro)
	f, err := os.Open(db.file)
	if err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	if err := walkFile(f, fi.Size(), uint64(ro.Info().PageSize)); err != nil {
		return db.damaged(err)
	}
	return nil
}

// bbolt's file layout (go.etcd.io/bbolt/internal/common), in the machine's
// byte order: a page starts with id (8), flags (2), count (2) and overflow
// (4), the number of pages after it that it spans. A meta page then holds
// magic (4), version (4), page size (4), flags (4), the root bucket's page
// (8) and sequence (8), the free list's page (8), the high-water mark (8),
// txid (8) and an FNV-64a checksum (8) of the fields before it. Elements
// follow the header, 16 bytes each: on a branch page pos (4), key size (4)
// and child page (8); on a leaf page flags (4), pos (4), key size (4) and
// value size (4), the key and value at pos bytes from the element. A
// bucket's value is its root page (8) and sequence (8), then, for an
// inline bucket (root 0), its leaf page.
const (
	boltHeader     = 16
	boltElement    = 16
	boltBranch     = 0x01
	boltLeaf       = 0x02
	boltBucketElem = 0x01
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	boltNoFreelist = math.MaxUint64
)

// walkFile checks the B+tree of the file f, of size bytes, as bbolt's
// Tx.Check would: the meta page bbolt would use, every page reached from
// the root being a branch or leaf page below the high-water mark, carrying
// its own id, inside the file and reached once, its elements inside it,
// and keys in order within each page and within the range of the parent's.
func walkFile(f io.ReaderAt, size int64, pageSize uint64) error {
	ne := binary.NativeEndian
	var meta []byte
	var txid uint64
	for i := uint64(0); i < 2; i++ {
		p := make([]byte, boltHeader+64)
		if _, err := f.ReadAt(p, int64(i*pageSize)); err != nil {
			return fmt.Errorf("meta page %d: %w", i, err)
		}
		m := p[boltHeader:]
		sum := fnv.New64a()
		_, _ = sum.Write(m[:56])
		if ne.Uint32(m) != boltMagic || ne.Uint32(m[4:]) != boltVersion || ne.Uint64(m[56:]) != sum.Sum64() {
			continue // bbolt uses the other one
		}
		if meta == nil || ne.Uint64(m[48:]) > txid {
			meta, txid = m, ne.Uint64(m[48:])
		}
	}
	if meta == nil {
		return errors.New("no valid meta page")
	}
	root, freelist, hwm := ne.Uint64(meta[16:]), ne.Uint64(meta[32:]), ne.Uint64(meta[40:])
	switch {
	case uint64(ne.Uint32(meta[8:])) != pageSize:
		return fmt.Errorf("meta page: page size %d, bbolt read %d", ne.Uint32(meta[8:]), pageSize)
	case hwm < 2 || hwm > uint64(size)/pageSize:
		return fmt.Errorf("the file is %d bytes, its pages reach %d: it was truncated", size, hwm*pageSize)
	case freelist != boltNoFreelist:
		// This store never writes its free list (NoFreelistSync).
		return errors.New("a stored free list: not a replayguard store, or damaged")
	}
	w := &walker{f: f, pageSize: pageSize, hwm: hwm, seen: make([]uint64, (hwm+63)/64)}
	_, err := w.tree(root, nil, nil, 0)
	return err
}

// walker walks a bbolt file's pages.
type walker struct {
	f        io.ReaderAt
	pageSize uint64
	hwm      uint64   // pages in use have lower ids
	seen     []uint64 // a bit per page reached
	bufs     [][]byte // a page buffer per depth of the walk
}

// tree checks the subtree of page id, its keys in [min, max) (nil: no
// bound), and returns its largest key, as bbolt's check does.
func (w *walker) tree(id uint64, min, max []byte, depth int) ([]byte, error) {
	ne := binary.NativeEndian
	if id < 2 || id >= w.hwm {
		return nil, fmt.Errorf("page %d: out of bounds (high-water mark %d)", id, w.hwm)
	}
	var h [boltHeader]byte
	if _, err := w.f.ReadAt(h[:], int64(id*w.pageSize)); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	overflow := uint64(ne.Uint32(h[12:]))
	switch flags := ne.Uint16(h[8:]); {
	case ne.Uint64(h[:]) != id:
		return nil, fmt.Errorf("page %d: identifies as page %d", id, ne.Uint64(h[:]))
	case flags != boltBranch && flags != boltLeaf:
		return nil, fmt.Errorf("page %d: flags %#x, not a branch or leaf page", id, flags)
	case overflow >= w.hwm-id:
		return nil, fmt.Errorf("page %d: %d overflow pages pass the high-water mark %d", id, overflow, w.hwm)
	}
	for i := id; i <= id+overflow; i++ {
		if w.seen[i/64]&(1<<(i%64)) != 0 {
			return nil, fmt.Errorf("page %d: reached twice", i)
		}
		w.seen[i/64] |= 1 << (i % 64)
	}
	for len(w.bufs) <= depth {
		w.bufs = append(w.bufs, nil)
	}
	n := (overflow + 1) * w.pageSize
	if uint64(cap(w.bufs[depth])) < n {
		w.bufs[depth] = make([]byte, n)
	}
	p := w.bufs[depth][:n]
	if _, err := w.f.ReadAt(p, int64(id*w.pageSize)); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	return w.elements(id, p, min, max, depth)
}

// elements checks the elements of page p (id 0: an inline bucket's) and
// walks the subtrees and buckets they refer to.
func (w *walker) elements(id uint64, p, min, max []byte, depth int) ([]byte, error) {
	ne := binary.NativeEndian
	branch, count := ne.Uint16(p[8:]) == boltBranch, int(ne.Uint16(p[10:]))
	switch {
	case boltHeader+count*boltElement > len(p):
		return nil, fmt.Errorf("page %d: %d elements do not fit", id, count)
	case branch && count == 0:
		// bbolt never writes one; its cursors would read past the header.
		return nil, fmt.Errorf("page %d: a branch page without elements", id)
	}
	keys, values := make([][]byte, count), make([][]byte, count)
	for i := range keys {
		e := uint64(boltHeader + i*boltElement)
		pos, klen, vlen := uint64(ne.Uint32(p[e:])), uint64(ne.Uint32(p[e+4:])), uint64(0)
		if !branch {
			pos, klen, vlen = uint64(ne.Uint32(p[e+4:])), uint64(ne.Uint32(p[e+8:])), uint64(ne.Uint32(p[e+12:]))
		}
		if e+pos+klen+vlen > uint64(len(p)) {
			return nil, fmt.Errorf("page %d: element %d reaches past the page", id, i)
		}
		keys[i], values[i] = p[e+pos:e+pos+klen], p[e+pos+klen:e+pos+klen+vlen]
	}
	var largest []byte // of the last subtree walked
	prev := min
	for i, key := range keys {
		if i == 0 && prev != nil && bytes.Compare(prev, key) > 0 ||
			i > 0 && bytes.Compare(prev, key) >= 0 ||
			max != nil && bytes.Compare(key, max) >= 0 {
			return nil, fmt.Errorf("page %d: key %d out of order", id, i)
		}
		e := boltHeader + i*boltElement
		switch {
		case branch:
			next := max
			if i+1 < count {
				next = keys[i+1]
			}
			var err error
			if largest, err = w.tree(ne.Uint64(p[e+8:]), key, next, depth+1); err != nil {
				return nil, err
			}
			prev = largest
		case ne.Uint32(p[e:])&boltBucketElem != 0:
			if err := w.bucket(id, values[i], depth+1); err != nil {
				return nil, err
			}
			prev = key
		default:
			prev = key
		}
	}
	if !branch && count > 0 {
		return bytes.Clone(keys[count-1]), nil
	}
	return largest, nil
}

// bucket checks the bucket whose value v is on page id.
func (w *walker) bucket(id uint64, v []byte, depth int) error {
	if len(v) < 16 {
		return fmt.Errorf("page %d: a bucket of %d bytes", id, len(v))
	}
	if root := binary.NativeEndian.Uint64(v); root != 0 {
		_, err := w.tree(root, nil, nil, depth)
		return err
	}
	inline := v[16:]
	if len(inline) < boltHeader || binary.NativeEndian.Uint16(inline[8:]) != boltLeaf {
		return fmt.Errorf("page %d: an inline bucket without its leaf page", id)
	}
	_, err := w.elements(0, inline, nil, nil, depth)
	return err
}
