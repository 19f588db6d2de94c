// Command ratios reads `go test -bench` output on stdin and prints each goal
// ratio (medians over -count runs, both sides from the same run) and whether
// it is met; with -markdown, as the Markdown table of BENCHMARKS.md.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// goal compares a benchmark's metric with a baseline's, or with a constant
// when Base is empty.
type goal struct {
	Name, Bench, Base, Metric string
	Max                       float64
}

var goals = []goal{
	{"middleware vs bare net/http handler, 1 KiB (loopback)", "ServeMiddleware/1KiB", "ServeBare/1KiB", "ns/op", 2.0},
	{"middleware vs bare net/http handler, 64 KiB (loopback)", "ServeMiddleware/64KiB", "ServeBare/64KiB", "ns/op", 0},
	{"middleware vs HMAC-SHA256 floor, 64 KiB", "Middleware/64KiB", "Floor/64KiB", "ns/op", 1.1},
	{"middleware vs HMAC-SHA256 floor, 1 KiB", "Middleware/1KiB", "Floor/1KiB", "ns/op", 0},
	{"idempotent replay vs gofiber idempotency replay", "IdempotencyReplay/replayguard", "IdempotencyReplay/gofiber", "ns/op", 1.0},
	{"middleware allocations per request, 1 KiB", "Middleware/1KiB", "", "allocs/op", 12},
	{"middleware allocations per request, 64 KiB", "Middleware/64KiB", "", "allocs/op", 12},
	{"redis bloom nonce memory at 1e-9 over 1M nonces", "RedisMemory/bloom", "", "B/nonce", 8},
	{"redis exact nonce memory over 1M nonces", "RedisMemory/exact", "", "B/nonce", 0},
	{"redis bloom vs exact per check, 64 goroutines, paired (≥0.7× checks/s)", "RedisNoncePaired", "", "bloom/exact", 1 / 0.7},
	{"redis exact vs raw go-redis SET NX per check, paired (≥0.8× checks/s)", "RedisNoncePaired", "", "exact/setnx", 1 / 0.8},
	{"redis bloom vs exact per check, 64 goroutines, separate runs", "RedisNonce/bloom", "RedisNonce/exact", "ns/op", 0},
	{"redis exact vs raw go-redis SET NX per check, separate runs", "RedisNonce/exact", "RedisNonce/setnx", "ns/op", 0},
	{"redis round trips per nonce check, exact", "RedisRoundTrips/nonce-exact", "", "nonce-rt/req", 1},
	{"redis round trips per nonce check, bloom", "RedisRoundTrips/nonce-bloom", "", "nonce-rt/req", 1},
	{"redis round trips per idempotent first execution", "RedisRoundTrips/idempotent-first", "", "idem-rt/req", 2},
	{"redis round trips per idempotent replay", "RedisRoundTrips/idempotent-replay", "", "idem-rt/req", 1},
}

var line = regexp.MustCompile(`^Benchmark(\S+?)(-\d+)?\s+\d+\s+(.*)$`)

func main() {
	markdown := flag.Bool("markdown", false, "print the goals as a Markdown table (the one in BENCHMARKS.md)")
	flag.Parse()
	rs := evaluate(parse(os.Stdin))
	if *markdown {
		writeMarkdown(os.Stdout, rs)
		return
	}
	writeText(os.Stdout, rs)
}

// parse collects every sample of every metric of every benchmark.
func parse(r io.Reader) map[string]map[string][]float64 {
	samples := map[string]map[string][]float64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		fields := strings.Fields(m[3])
		for i := 0; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			if samples[m[1]] == nil {
				samples[m[1]] = map[string][]float64{}
			}
			samples[m[1]][fields[i+1]] = append(samples[m[1]][fields[i+1]], v)
		}
	}
	return samples
}

// result is a goal's outcome: Missing names what was not measured, else
// Value is in Unit and Verdict is "met", "NOT MET" or "info".
type result struct {
	goal
	Value   float64
	Unit    string
	Verdict string
	Missing string
}

func evaluate(samples map[string]map[string][]float64) []result {
	rs := make([]result, 0, len(goals))
	for _, g := range goals {
		r := result{goal: g}
		v, ok := median(samples, g.Bench, g.Metric)
		if !ok {
			r.Missing = "not measured"
			rs = append(rs, r)
			continue
		}
		r.Value, r.Unit = v, g.Metric
		if g.Base != "" {
			base, ok := median(samples, g.Base, g.Metric)
			if !ok || base == 0 {
				r.Missing = "baseline not measured"
				rs = append(rs, r)
				continue
			}
			r.Value, r.Unit = v/base, "×"
		}
		r.Verdict = "info"
		if g.Max > 0 {
			r.Verdict = "met"
			if r.Value > g.Max {
				r.Verdict = "NOT MET"
			}
		}
		rs = append(rs, r)
	}
	return rs
}

func writeText(w io.Writer, rs []result) {
	fmt.Fprintln(w, "\nGoals (medians; ratio = benchmark / baseline from the same run)")
	failed := 0
	for _, r := range rs {
		switch {
		case r.Missing != "":
			fmt.Fprintf(w, "  %-58s  %s\n", r.Name, r.Missing)
		case r.Max > 0:
			if r.Verdict != "met" {
				failed++
			}
			fmt.Fprintf(w, "  %-58s  %8.2f %-9s goal ≤ %g  %s\n", r.Name, r.Value, r.Unit, r.Max, r.Verdict)
		default:
			fmt.Fprintf(w, "  %-58s  %8.2f %-9s %s\n", r.Name, r.Value, r.Unit, r.Verdict)
		}
	}
	if failed > 0 {
		fmt.Fprintf(w, "%d goal(s) not met\n", failed)
	}
}

// writeMarkdown prints one row per goal, the goal's name in the first cell.
func writeMarkdown(w io.Writer, rs []result) {
	fmt.Fprintln(w, "| goal | measured | limit | verdict |")
	fmt.Fprintln(w, "|---|---:|---:|---|")
	for _, r := range rs {
		limit := limitCell(r.Max)
		if r.Missing != "" {
			fmt.Fprintf(w, "| %s | — | %s | %s |\n", r.Name, limit, r.Missing)
			continue
		}
		verdict := r.Verdict
		if verdict == "NOT MET" {
			verdict = "**not met**"
		}
		fmt.Fprintf(w, "| %s | %.2f %s | %s | %s |\n", r.Name, r.Value, r.Unit, limit, verdict)
	}
}

func median(s map[string]map[string][]float64, name, metric string) (float64, bool) {
	v := append([]float64(nil), s[name][metric]...)
	if len(v) == 0 {
		return 0, false
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2], true
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2, true
}

// limitCell is a goal's limit as the Markdown table shows it: empty for an
// information-only ratio.
func limitCell(limit float64) string {
	switch {
	case limit <= 0:
		return ""
	case limit == math.Trunc(limit):
		return fmt.Sprintf("≤ %.0f", limit)
	default:
		return fmt.Sprintf("≤ %.3g", limit)
	}
}
