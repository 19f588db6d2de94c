package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTable(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"base.json": `{"sent":100,"seconds":1,"requests_per_second":100,"outcomes":{"200":100},"p50_ms":0.2,"p99_ms":0.5}`,
		"mem.json":  `{"sent":100,"seconds":1,"requests_per_second":99.6,"outcomes":{"200":97,"401 nonce_replayed":2,"error: EOF":1},"p50_ms":0.3,"p99_ms":0.75}`,
	}
	var args []string
	for _, a := range [][2]string{{"no-op upstream alone", "base.json"}, {"memory", "mem.json"}} {
		p := filepath.Join(dir, a[1])
		if err := os.WriteFile(p, []byte(files[a[1]]), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, a[0], "100 req/s", p)
	}
	rows, err := readRows(args)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := write(&out, rows, "no-op upstream alone"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| no-op upstream alone | 100 req/s | 100 | 0.200 | 0.500 | — | 100 | 0 | 0 |",
		"| memory | 100 req/s | 100 | 0.300 | 0.750 | +0.250 ms | 97 | 2 | 1 |",
		"- memory, 100 req/s: 401 nonce_replayed: 2, error: EOF: 1",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in\n%s", want, out.String())
		}
	}
	if _, err := readRows(args[:2]); err == nil {
		t.Error("an incomplete triple was accepted")
	}
}

func TestRoundsAndCompare(t *testing.T) {
	dir := t.TempDir()
	file := func(name string, rps, p99 float64) string {
		p := filepath.Join(dir, name)
		s := fmt.Sprintf(`{"sent":100,"seconds":1,"requests_per_second":%g,"outcomes":{"200":100},"p50_ms":0.2,"p99_ms":%g}`, rps, p99)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	args := []string{
		"no-op upstream alone", "max", file("base", 1000, 1),
		"memory", "max", file("m1", 400, 10),
		"disk", "max", file("d1", 200, 14),
		"memory", "max", file("m2", 500, 10),
		"disk", "max", file("d2", 450, 11),
		"disk", "max", file("d3", 300, 30), // no memory run to pair with
	}
	rows, err := readRows(args)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := write(&out, rows, "no-op upstream alone"); err != nil {
		t.Fatal(err)
	}
	if err := writeCompare(&out, rows, "disk", "memory"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| mode | load | round | requests/s |",
		"| disk | max | 2 | 450 | 0.200 | 11.000 | +10.000 ms | 100 | 0 | 0 |",
		"| max | 1 | 200 | 400 | 0.50 | 14.000 | 10.000 | +4.000 ms |",
		"| max | 2 | 450 | 500 | 0.90 | 11.000 | 10.000 | +1.000 ms |",
		"| max | median of 2 | | | 0.70 | | | +2.500 ms |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in\n%s", want, out.String())
		}
	}
	if _, cmp, _ := strings.Cut(out.String(), "run by run"); strings.Contains(cmp, "| max | 3 |") {
		t.Errorf("an unpaired run was compared:\n%s", out.String())
	}
	if err := writeCompare(&out, rows, "disk", "redis"); err == nil {
		t.Error("a comparison with no pairs was accepted")
	}
}
