package main

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// The command name may hold spaces and parentheses.
	line := "4242 (we (ird) name) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 7 0 1000 0 0\n"
	ticks, ppid, err := parseStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if ticks != 281 || ppid != 17 {
		t.Errorf("ticks %d, ppid %d; want 281, 17", ticks, ppid)
	}
	if _, _, err := parseStat("4242 (short) S 1 2"); err == nil {
		t.Error("a short line parsed")
	}
}

func TestGCCPU(t *testing.T) {
	log := strings.Join([]string{
		`{"msg":"replayguard serving"}`,
		"gc 1 @0.500s 1%: 0.1+2+0.1 ms clock, 0.2+1.0/2.0/3.0+0.3 ms cpu, 4->4->1 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 2 P",
		"gc 2 @1.500s 1%: 0.1+2+0.1 ms clock, 0.5+10/20/30+0.5 ms cpu, 4->4->1 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 2 P",
		`{"msg":"request","path":"/gc 3 @1.6s"}`,
		"gc 3 @2.250s 1%: 0.1+2+0.1 ms clock, 1+1/1/1+1 ms cpu, 4->4->1 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 2 P",
		"gc 4 @3.000s 1%: 0.1+2+0.1 ms clock, 9+9/9/9+9 ms cpu, 4->4->1 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 2 P",
	}, "\n")
	cpu, cycles := gcCPU(strings.NewReader(log), time.Second, 3*time.Second)
	if cycles != 2 || cpu != 66*time.Millisecond {
		t.Errorf("%d cycles, %v; want 2 cycles of 61 ms + 5 ms", cycles, cpu)
	}
}

func TestStatOf(t *testing.T) {
	for _, c := range []struct {
		in             []float64
		median, lo, hi float64
	}{
		{[]float64{3, 1, 2}, 2, 1, 3},
		{[]float64{4, 1, 3, 2}, 2.5, 1, 4},
		{[]float64{math.NaN(), 5, math.Inf(1)}, 5, 5, 5},
	} {
		s := statOf(c.in)
		if s.median != c.median || s.lo != c.lo || s.hi != c.hi {
			t.Errorf("statOf(%v) = %+v; want median %g in %g … %g", c.in, s, c.median, c.lo, c.hi)
		}
	}
	if s := statOf(nil); !math.IsNaN(s.median) {
		t.Errorf("statOf(nil) = %+v", s)
	}
}

func TestLoadArgs(t *testing.T) {
	r := &runner{o: options{bin: "/b", concurrency: 64}, secret: "s", body: "/w/body"}
	post := r.loadArgs("http://x/v1/charges", window{"POST", 0}, 200000, time.Minute)
	want := []string{"/b/replayguard", "load", "--secret", "s", "--key-id", keyID, "-X", "POST", "-d", "@/w/body",
		"--idempotency-key=true", "--rate", "0", "--concurrency", "64", "--duration", "1m0s", "--requests", "200000",
		"--json", "http://x/v1/charges"}
	if !slices.Equal(post, want) {
		t.Errorf("POST:\n got %q\nwant %q", post, want)
	}
	get := r.loadArgs("http://x/v1/charges", window{"GET", 1000}, 0, 10*time.Second)
	if !slices.Contains(get, "-d=") || !slices.Contains(get, "--idempotency-key=false") || slices.Contains(get, "--requests") ||
		!slices.Contains(get, "1000") {
		t.Errorf("GET: %q", get)
	}
}

// fake is a result of three rounds: the baseline, memory at 1.2× its CPU
// per POST and 1.1× per GET, and Caddy with and without the directive.
func fake() *results {
	res := &results{Options: resultOptions{Rounds: 3, Rate: 1000, Concurrency: 64, BodyBytes: 1024, Preload: 10, Duration: "10s"}}
	for _, name := range []string{"bare", "memory", "caddy", "caddy-replayguard"} {
		tg, _ := targetByName(name)
		res.Targets = append(res.Targets, targetInfo{Name: name, Label: tg.label, Logs: tg.logs})
	}
	add := func(target string, round int, method string, rate, rps, cpuSeconds, p99 float64) {
		res.Samples = append(res.Samples, sample{Round: round, Target: target, Method: method, Rate: rate, Sent: 10000, OK: 10000,
			RPS: rps, CPUSeconds: cpuSeconds, GCCPUSeconds: cpuSeconds / 10, P99: p99, Outcomes: map[string]int{"200": 10000}})
	}
	for round := 1; round <= 3; round++ {
		load := float64(round) // the machine's load moves both sides of a round alike
		add("bare", round, "POST", 0, 9000/load, 0.5*load, 20)
		add("bare", round, "GET", 0, 10000/load, 0.4*load, 15)
		add("bare", round, "POST", 1000, 1000, 1, 1.5*load)
		add("bare", round, "GET", 1000, 1000, 1, 1.2)
		add("memory", round, "POST", 0, 8000/load, 0.6*load, 20)
		add("memory", round, "GET", 0, 9500/load, 0.44*load, 15)
		add("memory", round, "POST", 1000, 1000, 1, 1.5*load+0.25)
		add("memory", round, "GET", 1000, 1000, 1, 1.3)
		add("caddy", round, "POST", 0, 6000/load, 1.2*load, 30)
		add("caddy", round, "GET", 0, 6000/load, 1*load, 30)
		add("caddy-replayguard", round, "POST", 0, 5700/load, 1.3*load, 30)
		add("caddy-replayguard", round, "GET", 0, 5000/load, 1.1*load, 30)
	}
	return res
}

func TestGoals(t *testing.T) {
	md := fake().markdown()
	for _, want := range []string{
		"| `replayguard serve`, memory: CPU per covered POST ÷ the baseline's | ≤ 1.25 | 1.20 (1.20 … 1.20) | met |",
		"| `replayguard serve`, memory: CPU per GET ÷ the baseline's | ≤ 1.05 | 1.10 (1.10 … 1.10) | NOT MET |",
		"| `replayguard serve`, memory: POST p99 at 1,000 req/s − the baseline's | ≤ +0.5 ms | +0.25 ms (+0.25 ms … +0.25 ms) | met |",
		"| Caddy + directive: req/s of covered POSTs ÷ Caddy `reverse_proxy` alone | ≥ 0.90 | 0.95 (0.95 … 0.95) | met |",
		"(req/s 0.95 (0.95 … 0.95) of Caddy alone)",
		// The baseline's medians, its CPU 50 µs per request at load 2.
		"| 4,500 | 1 | 100.0 | 1 | 10.0 | 1 | 3.00 | — |",
		"| `replayguard serve`, memory: CPU per GET ÷ the baseline's, at 1,000 req/s | ≤ 1.05 | 1.00 (1.00 … 1.00) | met |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report without %q:\n%s", want, md)
		}
	}
	if !strings.HasPrefix(md, beginMarker+"\n") || !strings.HasSuffix(md, endMarker+"\n") {
		t.Error("report not between the markers")
	}
}

func TestErrorsReported(t *testing.T) {
	res := fake()
	res.Samples[0].OK = 9990
	res.Samples[0].Outcomes = map[string]int{"200": 9990, "error: connection reset by peer": 10}
	if md := res.markdown(); !strings.Contains(md, "Answers other than 2xx: bare round 1 POST max: 200 × 9990, error: connection reset by peer × 10.") {
		t.Errorf("errors not reported:\n%s", md)
	}
}

func TestSplice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "B.md")
	if err := os.WriteFile(path, []byte("# B\n\nbefore\n"+beginMarker+"\nold\n"+endMarker+"\nafter\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := splice(path, beginMarker+"\nnew\n"+endMarker+"\n"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if got, want := string(b), "# B\n\nbefore\n"+beginMarker+"\nnew\n"+endMarker+"\nafter\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if err := os.WriteFile(path, []byte("# B\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := splice(path, "x"); err == nil {
		t.Error("spliced into a file without markers")
	}
}

// TestBenchmarksSection: BENCHMARKS.md has the section peers writes.
func TestBenchmarksSection(t *testing.T) {
	b, err := os.ReadFile("../../../BENCHMARKS.md")
	if err != nil {
		t.Fatal(err)
	}
	i, j := strings.Index(string(b), beginMarker), strings.Index(string(b), endMarker)
	if i < 0 || j < i {
		t.Fatalf("BENCHMARKS.md has no %s … %s section", beginMarker, endMarker)
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 200000: "200,000", 1234567.4: "1,234,567", -4500: "-4,500"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%g) = %q, want %q", in, got, want)
		}
	}
}
