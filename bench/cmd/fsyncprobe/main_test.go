package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	var out strings.Builder
	if err := run(&out, dir, 20, 4096); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"overwrite 4 KiB at offset 0 + fdatasync, 20 times: p50 ", "append 4 KiB + fsync, 20 times: p50 "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in\n%s", want, out.String())
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("files left behind: %v", left)
	}
}

func TestQuantile(t *testing.T) {
	var l latencies
	for i := 1; i <= 100; i++ {
		l = append(l, time.Duration(i)*time.Millisecond)
	}
	if q := l.quantile(0.5); q != 50*time.Millisecond {
		t.Errorf("p50 = %v", q)
	}
	if q := l.quantile(0.99); q != 99*time.Millisecond {
		t.Errorf("p99 = %v", q)
	}
	if q := l.quantile(1); q != 100*time.Millisecond {
		t.Errorf("max = %v", q)
	}
}
