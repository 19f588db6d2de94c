// Command loadtable prints the Markdown table of bench/load.sh from the
// JSON summaries of `replayguard load --json`.
//
//	loadtable [-baseline MODE] [-compare A=B ...] MODE LOAD FILE [MODE LOAD FILE ...]
//
// Each triple is one run: the gateway mode, the load it was driven with (a
// label such as "1000 req/s" or "max") and the file holding its summary.
// The rows whose mode is the baseline (default "no-op upstream alone") are
// the upstream measured without the gateway; every other row's added p99 is
// its p99 minus the baseline's p99 under the same load label (its first
// run). A mode and load given more than once are rounds of the same
// measurement, numbered in the order given, and the table gets a round
// column.
//
// Each -compare A=B adds a table pairing every run of mode A with the run
// of mode B of the same load and round: A's requests/s over B's and A's
// p99 minus B's, with the medians over the rounds when there are several.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
)

// summary is the part of `replayguard load --json` the table reads.
type summary struct {
	Sent       int            `json:"sent"`
	Seconds    float64        `json:"seconds"`
	Throughput float64        `json:"requests_per_second"`
	Outcomes   map[string]int `json:"outcomes"`
	P50        float64        `json:"p50_ms"`
	P99        float64        `json:"p99_ms"`
}

type row struct {
	mode, load string
	round      int // 1 for the first run of mode and load, 2 for the next…
	s          summary
}

// pair is a -compare flag: mode a measured against mode b.
type pair struct{ a, b string }

type pairs []pair

func (p *pairs) String() string { return fmt.Sprint(*p) }

func (p *pairs) Set(v string) error {
	a, b, ok := strings.Cut(v, "=")
	if !ok || a == "" || b == "" {
		return fmt.Errorf("want MODE=MODE, got %q", v)
	}
	*p = append(*p, pair{a, b})
	return nil
}

func main() {
	baseline := flag.String("baseline", "no-op upstream alone", "mode name of the rows measuring the upstream alone")
	var compare pairs
	flag.Var(&compare, "compare", "A=B: a table of mode A against mode B, run by run (repeatable)")
	flag.Parse()
	rows, err := readRows(flag.Args())
	if err == nil {
		err = write(os.Stdout, rows, *baseline)
	}
	for _, p := range compare {
		if err == nil {
			err = writeCompare(os.Stdout, rows, p.a, p.b)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtable:", err)
		os.Exit(1)
	}
}

func readRows(args []string) ([]row, error) {
	if len(args) == 0 || len(args)%3 != 0 {
		return nil, errors.New("want MODE LOAD FILE triples")
	}
	var rows []row
	seen := map[[2]string]int{}
	for i := 0; i < len(args); i += 3 {
		b, err := os.ReadFile(args[i+2])
		if err != nil {
			return nil, err
		}
		r := row{mode: args[i], load: args[i+1]}
		seen[[2]string{r.mode, r.load}]++
		r.round = seen[[2]string{r.mode, r.load}]
		if err := json.Unmarshal(b, &r.s); err != nil {
			return nil, fmt.Errorf("%s: %w", args[i+2], err)
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// counts splits outcomes into accepted (2xx), rejected (any other status,
// with the problem codes) and errors (no response).
func counts(outcomes map[string]int) (accepted, rejected, failed int, detail string) {
	keys := make([]string, 0, len(outcomes))
	for k := range outcomes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		n := outcomes[k]
		switch {
		case strings.HasPrefix(k, "2"):
			accepted += n
		case strings.HasPrefix(k, "error"):
			failed += n
			parts = append(parts, fmt.Sprintf("%s: %d", k, n))
		default:
			rejected += n
			parts = append(parts, fmt.Sprintf("%s: %d", k, n))
		}
	}
	return accepted, rejected, failed, strings.Join(parts, ", ")
}

func write(w io.Writer, rows []row, baseline string) error {
	base := map[string]float64{}
	rounds := false
	for _, r := range rows {
		if _, ok := base[r.load]; !ok && r.mode == baseline {
			base[r.load] = r.s.P99
		}
		rounds = rounds || r.round > 1
	}
	var b strings.Builder
	if rounds {
		b.WriteString("| mode | load | round | requests/s | p50 ms | p99 ms | p99 added vs no-op | accepted | rejected | errors |\n")
		b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	} else {
		b.WriteString("| mode | load | requests/s | p50 ms | p99 ms | p99 added vs no-op | accepted | rejected | errors |\n")
		b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	}
	var notes []string
	for _, r := range rows {
		added := "—"
		if bp, ok := base[r.load]; ok && r.mode != baseline {
			added = fmt.Sprintf("%+.3f ms", r.s.P99-bp)
		}
		acc, rej, failed, detail := counts(r.s.Outcomes)
		round, where := "", ""
		if rounds {
			round = fmt.Sprintf(" %d |", r.round)
			where = fmt.Sprintf(", round %d", r.round)
		}
		fmt.Fprintf(&b, "| %s | %s |%s %.0f | %.3f | %.3f | %s | %d | %d | %d |\n",
			r.mode, r.load, round, r.s.Throughput, r.s.P50, r.s.P99, added, acc, rej, failed)
		if detail != "" {
			notes = append(notes, fmt.Sprintf("- %s, %s%s: %s", r.mode, r.load, where, detail))
		}
	}
	if len(notes) > 0 {
		b.WriteString("\nNot accepted:\n")
		b.WriteString(strings.Join(notes, "\n") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeCompare writes the table of mode a against mode b: one line per
// load and round both were measured in, then the medians per load.
func writeCompare(w io.Writer, rows []row, a, b string) error {
	type key struct {
		load  string
		round int
	}
	other := map[key]summary{}
	for _, r := range rows {
		if r.mode == b {
			other[key{r.load, r.round}] = r.s
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n%s against %s, run by run (same load, same round):\n\n", a, b)
	fmt.Fprintf(&sb, "| load | round | %s req/s | %s req/s | req/s ratio | %s p99 ms | %s p99 ms | p99 difference |\n", a, b, a, b)
	sb.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|\n")
	var loads []string
	ratios := map[string][]float64{}
	diffs := map[string][]float64{}
	for _, r := range rows {
		if r.mode != a {
			continue
		}
		o, ok := other[key{r.load, r.round}]
		if !ok {
			continue
		}
		if _, ok := ratios[r.load]; !ok {
			loads = append(loads, r.load)
		}
		ratio, diff := math.NaN(), r.s.P99-o.P99
		if o.Throughput > 0 {
			ratio = r.s.Throughput / o.Throughput
		}
		ratios[r.load] = append(ratios[r.load], ratio)
		diffs[r.load] = append(diffs[r.load], diff)
		fmt.Fprintf(&sb, "| %s | %d | %.0f | %.0f | %.2f | %.3f | %.3f | %+.3f ms |\n",
			r.load, r.round, r.s.Throughput, o.Throughput, ratio, r.s.P99, o.P99, diff)
	}
	if len(loads) == 0 {
		return fmt.Errorf("-compare %s=%s: no run of one paired with a run of the other", a, b)
	}
	for _, l := range loads {
		if len(ratios[l]) > 1 {
			fmt.Fprintf(&sb, "| %s | median of %d | | | %.2f | | | %+.3f ms |\n",
				l, len(ratios[l]), median(ratios[l]), median(diffs[l]))
		}
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

// median is the middle value of v, the mean of the middle two for an even
// count.
func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
