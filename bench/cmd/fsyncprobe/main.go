// Command fsyncprobe measures the device's own synchronous-write latency in
// a directory: the floor under any store that puts each commit on stable
// storage.
//
//	fsyncprobe [-n 2000] [-size 4096] DIR
//
// Two series of n writes, each timed from the write to the end of its
// sync, in a temporary file of DIR removed afterwards:
//
//   - overwrite: size bytes at offset 0 of a file of that size, then
//     fdatasync (only the data: the file's size does not change);
//   - append: size bytes at the end of a growing file, then fsync (data and
//     the grown size).
//
// It prints one line per series with p50, p99 and max in milliseconds.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"time"
)

func main() {
	n := flag.Int("n", 2000, "writes per series")
	size := flag.Int("size", 4096, "bytes per write")
	flag.Parse()
	if flag.NArg() != 1 || *n < 1 || *size < 1 {
		fmt.Fprintln(os.Stderr, "usage: fsyncprobe [-n 2000] [-size 4096] DIR")
		os.Exit(2)
	}
	if err := run(os.Stdout, flag.Arg(0), *n, *size); err != nil {
		fmt.Fprintln(os.Stderr, "fsyncprobe:", err)
		os.Exit(1)
	}
}

func run(w io.Writer, dir string, n, size int) error {
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte(i)
	}
	over, err := series(dir, n, func(f *os.File, i int) error {
		buf[0] = byte(i)
		if _, err := f.WriteAt(buf, 0); err != nil {
			return err
		}
		return fdatasync(f)
	}, buf)
	if err != nil {
		return fmt.Errorf("overwrite: %w", err)
	}
	app, err := series(dir, n, func(f *os.File, i int) error {
		buf[0] = byte(i)
		if _, err := f.Write(buf); err != nil {
			return err
		}
		return f.Sync()
	}, nil)
	if err != nil {
		return fmt.Errorf("append: %w", err)
	}
	kib := fmt.Sprintf("%g KiB", float64(size)/1024)
	fmt.Fprintf(w, "overwrite %s at offset 0 + fdatasync, %d times: %s\n", kib, n, over)
	fmt.Fprintf(w, "append %s + fsync, %d times: %s\n", kib, n, app)
	return nil
}

// series creates a file in dir (with initial content, synced, when initial
// is not nil), times n calls of op on it and removes it.
func series(dir string, n int, op func(f *os.File, i int) error, initial []byte) (lat latencies, err error) {
	f, err := os.CreateTemp(dir, "fsyncprobe-*")
	if err != nil {
		return nil, err
	}
	defer func() {
		err = errors.Join(err, f.Close(), os.Remove(f.Name()))
	}()
	if initial != nil {
		if _, err := f.Write(initial); err != nil {
			return nil, err
		}
		if err := f.Sync(); err != nil {
			return nil, err
		}
	}
	lat = make(latencies, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		if err := op(f, i); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(start))
	}
	return lat, nil
}

type latencies []time.Duration

// quantile is the p-quantile by rank (the value at rank ⌈p·n⌉), as
// `replayguard load` computes its percentiles.
func (l latencies) quantile(p float64) time.Duration {
	s := append(latencies(nil), l...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(math.Ceil(p*float64(len(s)))) - 1
	if i < 0 {
		i = 0
	}
	return s[i]
}

func (l latencies) String() string {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return fmt.Sprintf("p50 %.3f ms, p99 %.3f ms, max %.3f ms",
		ms(l.quantile(0.50)), ms(l.quantile(0.99)), ms(l.quantile(1)))
}
