package main

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

const sample = `BenchmarkServeMiddleware/1KiB-2   1000   3000 ns/op   7 allocs/op
BenchmarkServeMiddleware/1KiB-2   1000   5000 ns/op   7 allocs/op
BenchmarkServeBare/1KiB-2         1000   2000 ns/op   3 allocs/op
BenchmarkMiddleware/1KiB-2        1000   1000 ns/op   13 allocs/op
`

func TestEvaluate(t *testing.T) {
	rs := evaluate(parse(strings.NewReader(sample)))
	byName := map[string]result{}
	for _, r := range rs {
		byName[r.Name] = r
	}
	if r := byName["middleware vs bare net/http handler, 1 KiB (loopback)"]; r.Value != 2 || r.Unit != "×" || r.Verdict != "met" {
		t.Errorf("median ratio: %+v", r)
	}
	if r := byName["middleware allocations per request, 1 KiB"]; r.Value != 13 || r.Verdict != "NOT MET" {
		t.Errorf("constant goal: %+v", r)
	}
	if r := byName["middleware vs HMAC-SHA256 floor, 1 KiB"]; r.Missing != "baseline not measured" {
		t.Errorf("missing baseline: %+v", r)
	}
}

// TestBenchmarksDoc checks that the goal table of BENCHMARKS.md lists
// exactly the goals of this command, with their limits: a goal added,
// renamed or retuned here needs a new `make bench` run published there.
func TestBenchmarksDoc(t *testing.T) {
	f, err := os.Open("../../../BENCHMARKS.md")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	inTable := false
	documented := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "| goal | measured | limit | verdict |") {
			inTable = true
			continue
		}
		if !inTable {
			continue
		}
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 4 || strings.HasPrefix(cells[0], "---") {
			continue
		}
		documented[strings.TrimSpace(cells[0])] = strings.TrimSpace(cells[2])
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if !inTable {
		t.Fatal("BENCHMARKS.md has no goal table (| goal | measured | limit | verdict |)")
	}
	for _, g := range goals {
		limit, ok := documented[g.Name]
		if !ok {
			t.Errorf("goal %q is not in BENCHMARKS.md", g.Name)
			continue
		}
		if want := limitCell(g.Max); limit != want {
			t.Errorf("goal %q: BENCHMARKS.md says limit %q, cmd/ratios %q", g.Name, limit, want)
		}
		delete(documented, g.Name)
	}
	for name := range documented {
		t.Errorf("BENCHMARKS.md lists %q, which is no goal of cmd/ratios", name)
	}
}
