// Command loadtable prints the Markdown table of bench/load.sh from the
// JSON summaries of `replayguard load --json`.
//
//	loadtable [-baseline MODE] MODE LOAD FILE [MODE LOAD FILE ...]
//
// Each triple is one run: the gateway mode, the load it was driven with (a
// label such as "1000 req/s" or "max") and the file holding its summary.
// The rows whose mode is the baseline (default "no-op upstream alone") are
// the upstream measured without the gateway; every other row's added p99 is
// its p99 minus the baseline's p99 under the same load label.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
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
	s          summary
}

func main() {
	baseline := flag.String("baseline", "no-op upstream alone", "mode name of the rows measuring the upstream alone")
	flag.Parse()
	rows, err := readRows(flag.Args())
	if err == nil {
		err = write(os.Stdout, rows, *baseline)
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
	for i := 0; i < len(args); i += 3 {
		b, err := os.ReadFile(args[i+2])
		if err != nil {
			return nil, err
		}
		r := row{mode: args[i], load: args[i+1]}
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
	for _, r := range rows {
		if r.mode == baseline {
			base[r.load] = r.s.P99
		}
	}
	var b strings.Builder
	b.WriteString("| mode | load | requests/s | p50 ms | p99 ms | p99 added vs no-op | accepted | rejected | errors |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	var notes []string
	for _, r := range rows {
		added := "—"
		if bp, ok := base[r.load]; ok && r.mode != baseline {
			added = fmt.Sprintf("%+.3f ms", r.s.P99-bp)
		}
		acc, rej, failed, detail := counts(r.s.Outcomes)
		fmt.Fprintf(&b, "| %s | %s | %.0f | %.3f | %.3f | %s | %d | %d | %d |\n",
			r.mode, r.load, r.s.Throughput, r.s.P50, r.s.P99, added, acc, rej, failed)
		if detail != "" {
			notes = append(notes, fmt.Sprintf("- %s, %s: %s", r.mode, r.load, detail))
		}
	}
	if len(notes) > 0 {
		b.WriteString("\nNot accepted:\n")
		b.WriteString(strings.Join(notes, "\n") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
