package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"time"
)

// results is what a run measured, saved as JSON so that the report can be
// rendered again (-render).
type results struct {
	Started      time.Time     `json:"started"`
	Finished     time.Time     `json:"finished"`
	UptimeBefore string        `json:"uptime_before"`
	UptimeAfter  string        `json:"uptime_after"`
	Command      string        `json:"command"`
	Machine      machine       `json:"machine"`
	Options      resultOptions `json:"options"`
	Targets      []targetInfo  `json:"targets"`
	Samples      []sample      `json:"samples"`
	Notes        []string      `json:"notes,omitempty"`
}

type machine struct {
	CPU    string `json:"cpu"`
	Cores  int    `json:"cores"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
	Caddy  string `json:"caddy,omitempty"`
	Nginx  string `json:"nginx,omitempty"`
	Redis  string `json:"redis,omitempty"`
}

type resultOptions struct {
	Rounds      int     `json:"rounds"`
	Duration    string  `json:"duration"`
	Rate        float64 `json:"rate"`
	Concurrency int     `json:"concurrency"`
	BodyBytes   int     `json:"body_bytes"`
	Preload     int     `json:"preload"`
}

type targetInfo struct {
	Name   string `json:"name"`
	Label  string `json:"label"`
	Logs   string `json:"logs"`
	Config string `json:"config,omitempty"`
}

// sample is one timed window of one target in one round.
type sample struct {
	Round    int            `json:"round"`
	Target   string         `json:"target"`
	Method   string         `json:"method"`
	Rate     float64        `json:"rate"` // 0: as fast as the requests in flight go
	Sent     int            `json:"sent"`
	OK       int            `json:"ok"`
	Seconds  float64        `json:"seconds"`
	RPS      float64        `json:"requests_per_second"`
	P50      float64        `json:"p50_ms"`
	P99      float64        `json:"p99_ms"`
	Outcomes map[string]int `json:"outcomes"`
	// CPUSeconds is the user and system time of the target's processes
	// during the window.
	CPUSeconds float64 `json:"cpu_seconds"`
	// GCCPUSeconds is the CPU time of the GC cycles that started in the
	// window, -1 for a target that is not a Go program.
	GCCPUSeconds    float64 `json:"gc_cpu_seconds"`
	GCCycles        int     `json:"gc_cycles"`
	RedisCPUSeconds float64 `json:"redis_cpu_seconds,omitempty"`
}

func (s sample) cpuPerRequest() float64 {
	if s.Sent == 0 {
		return math.NaN()
	}
	return 1e6 * s.CPUSeconds / float64(s.Sent)
}

func (s sample) gcPerRequest() float64 {
	if s.Sent == 0 || s.GCCPUSeconds < 0 {
		return math.NaN()
	}
	return 1e6 * s.GCCPUSeconds / float64(s.Sent)
}

func (s sample) redisPerRequest() float64 {
	if s.Sent == 0 {
		return math.NaN()
	}
	return 1e6 * s.RedisCPUSeconds / float64(s.Sent)
}

func (res *results) save(path string) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}

func readResults(path string) (*results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var res results
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &res, nil
}

// find returns the sample of target in round for method at rate.
func (res *results) find(target string, round int, method string, rate float64) (sample, bool) {
	for _, s := range res.Samples {
		if s.Target == target && s.Round == round && s.Method == method && s.Rate == rate {
			return s, true
		}
	}
	return sample{}, false
}

// stat is a median over the rounds with the smallest and largest value.
type stat struct {
	median, lo, hi float64
	n              int
}

func statOf(v []float64) stat {
	var xs []float64
	for _, x := range v {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			xs = append(xs, x)
		}
	}
	if len(xs) == 0 {
		return stat{median: math.NaN(), lo: math.NaN(), hi: math.NaN()}
	}
	sort.Float64s(xs)
	m := xs[len(xs)/2]
	if len(xs)%2 == 0 {
		m = (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
	}
	return stat{median: m, lo: xs[0], hi: xs[len(xs)-1], n: len(xs)}
}

// paired returns, for every round both a and b were measured in, f of
// their samples.
func (res *results) paired(a, b, method string, rate float64, f func(a, b sample) float64) stat {
	var v []float64
	for round := 1; round <= res.Options.Rounds; round++ {
		sa, okA := res.find(a, round, method, rate)
		sb, okB := res.find(b, round, method, rate)
		if okA && okB {
			v = append(v, f(sa, sb))
		}
	}
	return statOf(v)
}

// each returns f of target's samples over the rounds.
func (res *results) each(target, method string, rate float64, f func(s sample) float64) stat {
	var v []float64
	for round := 1; round <= res.Options.Rounds; round++ {
		if s, ok := res.find(target, round, method, rate); ok {
			v = append(v, f(s))
		}
	}
	return statOf(v)
}

func rps(s sample) float64    { return s.RPS }
func cpuPer(s sample) float64 { return s.cpuPerRequest() }
func gcPer(s sample) float64  { return s.gcPerRequest() }
func p99(s sample) float64    { return s.P99 }

func ratio(f func(sample) float64) func(a, b sample) float64 {
	return func(a, b sample) float64 { return f(a) / f(b) }
}

func diff(f func(sample) float64) func(a, b sample) float64 {
	return func(a, b sample) float64 { return f(a) - f(b) }
}

// goal is a limit on a paired figure.
type goal struct {
	what       string
	a, b       string // target a measured against target b
	method     string
	rate       float64
	f          func(a, b sample) float64
	limit      float64
	atMost     bool // met when the figure is ≤ limit; else ≥ limit
	limitText  string
	formatting string
}

func (res *results) goals() []goal {
	rate := res.Options.Rate
	at := fmt.Sprintf(", at %s req/s", thousands(rate))
	return []goal{
		{what: "`replayguard serve`, memory: CPU per covered POST ÷ the baseline's", a: "memory", b: baseline, method: "POST",
			f: ratio(cpuPer), limit: 1.25, atMost: true, limitText: "≤ 1.25", formatting: "%.2f"},
		{what: "`replayguard serve`, memory: CPU per GET ÷ the baseline's", a: "memory", b: baseline, method: "GET",
			f: ratio(cpuPer), limit: 1.05, atMost: true, limitText: "≤ 1.05", formatting: "%.2f"},
		{what: fmt.Sprintf("`replayguard serve`, memory: POST p99 at %s req/s − the baseline's", thousands(rate)), a: "memory", b: baseline,
			method: "POST", rate: rate, f: diff(p99), limit: 0.5, atMost: true, limitText: "≤ +0.5 ms", formatting: "%+.2f ms"},
		{what: "Caddy + directive: req/s of covered POSTs ÷ Caddy `reverse_proxy` alone", a: "caddy-replayguard", b: "caddy", method: "POST",
			f: ratio(rps), limit: 0.9, limitText: "≥ 0.90", formatting: "%.2f"},
		// The CPU goals again where the machine is not saturated: each
		// request then also pays its own wake-ups, which batching hides
		// at full load.
		{what: "`replayguard serve`, memory: CPU per covered POST ÷ the baseline's" + at, a: "memory", b: baseline, method: "POST", rate: rate,
			f: ratio(cpuPer), limit: 1.25, atMost: true, limitText: "≤ 1.25", formatting: "%.2f"},
		{what: "`replayguard serve`, memory: CPU per GET ÷ the baseline's" + at, a: "memory", b: baseline, method: "GET", rate: rate,
			f: ratio(cpuPer), limit: 1.05, atMost: true, limitText: "≤ 1.05", formatting: "%.2f"},
	}
}

func (res *results) has(target string) bool {
	for _, t := range res.Targets {
		if t.Name == target {
			return true
		}
	}
	return false
}

// markdown renders the report: the section of BENCHMARKS.md between the
// peers markers.
func (res *results) markdown() string {
	var b strings.Builder
	o := res.Options
	fmt.Fprintf(&b, "%s\n## Peers — `bench/peers.sh`, %s\n\n", beginMarker, res.Started.Format("2006-01-02"))
	fmt.Fprintf(&b, "Command: `%s`. One interleaved run, %s to %s UTC: %d round(s); in each round every target is started afresh "+
		"in front of one no-op upstream (`bench/cmd/noop`), sent %s covered POSTs (1 KiB body, a fresh Idempotency-Key: as many "+
		"idempotency records where it keeps them) and then measured in four windows of %s — POST and GET as fast as %d "+
		"requests in flight go, then POST and GET at %s req/s — the targets taking turns (the order rotated by one each round). "+
		"One client for every target, `replayguard load` (hmac-signed, every request with a fresh nonce); the client, the "+
		"target, the upstream and Redis share the machine's cores.\n\n",
		res.Command, res.Started.Format("15:04"), res.Finished.Format("15:04"), o.Rounds, thousands(float64(o.Preload)), o.Duration,
		o.Concurrency, thousands(o.Rate))
	fmt.Fprintf(&b, "- load average before: `%s`\n- load average after: `%s`\n", res.UptimeBefore, res.UptimeAfter)
	m := res.Machine
	fmt.Fprintf(&b, "- machine: %s, %d cores, Linux %s, %s", m.CPU, m.Cores, m.Kernel, m.Go)
	for _, v := range []string{m.Caddy, m.Nginx, m.Redis} {
		if v != "" {
			fmt.Fprintf(&b, "; %s", v)
		}
	}
	b.WriteString("\n")
	for _, n := range res.Notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	b.WriteString("\nEvery ratio is taken between two targets of the same round, and its median over the rounds shown with " +
		"the range in brackets. CPU is the user and system time of the target's processes (nginx: master and workers) from " +
		"`/proc/PID/stat` over the window, per request sent; GC is the CPU time of the Go runtime's collection cycles that " +
		"started in the window (`GODEBUG=gctrace=1`), per request.\n\n")

	b.WriteString("| target | logs |\n|---|---|\n")
	for _, t := range res.Targets {
		fmt.Fprintf(&b, "| %s | %s |\n", t.Label, t.Logs)
	}
	b.WriteString("\n")

	for _, method := range []string{"POST", "GET"} {
		if method == "POST" {
			fmt.Fprintf(&b, "### POST, %d-byte body, fresh Idempotency-Key\n\n", o.BodyBytes)
		} else {
			b.WriteString("### GET, no body (nonce only)\n\n")
		}
		res.table(&b, method)
	}

	if res.has("redis-exact") || res.has("redis-bloom") {
		b.WriteString("redis-server's own CPU per request (max-rate windows, median):")
		sep := " "
		for _, t := range []string{"redis-exact", "redis-bloom"} {
			if !res.has(t) {
				continue
			}
			for _, method := range []string{"POST", "GET"} {
				s := res.each(t, method, 0, func(s sample) float64 { return s.redisPerRequest() })
				fmt.Fprintf(&b, "%s%s %s %.1f µs", sep, t, method, s.median)
				sep = ", "
			}
		}
		b.WriteString(".\n\n")
	}

	b.WriteString("### Goals\n\n| goal | limit | median (range) | |\n|---|---|---:|---|\n")
	for _, g := range res.goals() {
		if !res.has(g.a) || !res.has(g.b) {
			continue
		}
		s := res.paired(g.a, g.b, g.method, g.rate, g.f)
		verdict := "NOT MET"
		if g.atMost && s.median <= g.limit || !g.atMost && s.median >= g.limit {
			verdict = "met"
		}
		fmt.Fprintf(&b, "| %s | %s | %s (%s … %s) | %s |\n", g.what, g.limitText, fmt.Sprintf(g.formatting, s.median),
			fmt.Sprintf(g.formatting, s.lo), fmt.Sprintf(g.formatting, s.hi), verdict)
	}
	b.WriteString("\n")

	b.WriteString("<details><summary>Every window of every round</summary>\n\n")
	b.WriteString("| round | target | window | req/s | CPU µs/req | GC µs/req | p50 ms | p99 ms | answers |\n")
	b.WriteString("|---:|---|---|---:|---:|---:|---:|---:|---|\n")
	for _, s := range res.Samples {
		w := window{s.Method, s.Rate}
		fmt.Fprintf(&b, "| %d | %s | %s | %.0f | %.1f | %s | %.2f | %.2f | %s |\n", s.Round, s.Target, w.label(), s.RPS,
			s.cpuPerRequest(), num(s.gcPerRequest(), "%.1f"), s.P50, s.P99, outcomes(s.Outcomes))
	}
	b.WriteString("\n</details>\n\n<details><summary>Configurations (the secret replaced)</summary>\n\n")
	for _, t := range res.Targets {
		if t.Config == "" {
			continue
		}
		fmt.Fprintf(&b, "%s:\n\n```\n%s```\n\n", t.Name, t.Config)
	}
	b.WriteString("</details>\n" + endMarker + "\n")
	return b.String()
}

// table writes the table of one method: each target's medians and its
// ratios to the baseline.
func (res *results) table(b *strings.Builder, method string) {
	rate := res.Options.Rate
	fmt.Fprintf(b, "| target | req/s at %d in flight | ÷ baseline | CPU µs/request | ÷ baseline | GC µs/request | CPU ÷ baseline at %s req/s | p99 ms at %s req/s | − baseline |\n",
		res.Options.Concurrency, thousands(rate), thousands(rate))
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, t := range res.Targets {
		r := res.each(t.Name, method, 0, rps)
		c := res.each(t.Name, method, 0, cpuPer)
		g := res.each(t.Name, method, 0, gcPer)
		p := res.each(t.Name, method, rate, p99)
		rr, cr, fr, pd := "1", "1", "1", "—"
		if t.Name != baseline {
			rr = rangeOf(res.paired(t.Name, baseline, method, 0, ratio(rps)), "%.2f")
			cr = rangeOf(res.paired(t.Name, baseline, method, 0, ratio(cpuPer)), "%.2f")
			fr = rangeOf(res.paired(t.Name, baseline, method, rate, ratio(cpuPer)), "%.2f")
			pd = rangeOf(res.paired(t.Name, baseline, method, rate, diff(p99)), "%+.2f")
		}
		label := t.Label
		if t.Name == "caddy-replayguard" && res.has("caddy") {
			label += fmt.Sprintf(" (req/s %s of Caddy alone)", rangeOf(res.paired(t.Name, "caddy", method, 0, ratio(rps)), "%.2f"))
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", label, thousands(r.median), rr, num(c.median, "%.1f"), cr,
			num(g.median, "%.1f"), fr, num(p.median, "%.2f"), pd)
	}
	errs := res.errorsOf(method)
	if errs != "" {
		fmt.Fprintf(b, "\nAnswers other than 2xx: %s.\n", errs)
	}
	b.WriteString("\n")
}

// errorsOf lists the targets that answered a window of method with
// anything but 2xx.
func (res *results) errorsOf(method string) string {
	var parts []string
	for _, s := range res.Samples {
		if s.Method == method && s.OK != s.Sent {
			parts = append(parts, fmt.Sprintf("%s round %d %s: %s", s.Target, s.Round, window{s.Method, s.Rate}.label(), outcomes(s.Outcomes)))
		}
	}
	return strings.Join(parts, "; ")
}

func rangeOf(s stat, f string) string {
	if math.IsNaN(s.median) {
		return "—"
	}
	if s.n < 2 {
		return fmt.Sprintf(f, s.median)
	}
	return fmt.Sprintf(f+" ("+f+" … "+f+")", s.median, s.lo, s.hi)
}

func num(v float64, f string) string {
	if math.IsNaN(v) {
		return "—"
	}
	return fmt.Sprintf(f, v)
}

// thousands formats v rounded to a whole number with thousands separated
// by commas.
func thousands(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

func outcomes(o map[string]int) string {
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s × %d", k, o[k])
	}
	return strings.Join(parts, ", ")
}

const (
	beginMarker = "<!-- peers:begin -->"
	endMarker   = "<!-- peers:end -->"
)

// splice replaces the lines from beginMarker to endMarker in path with
// section (which holds both markers).
func splice(path, section string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	i := bytes.Index(b, []byte(beginMarker))
	j := bytes.Index(b, []byte(endMarker))
	if i < 0 || j < i {
		return errors.New(path + ": no " + beginMarker + " … " + endMarker + " section to replace")
	}
	j += len(endMarker)
	if j < len(b) && b[j] == '\n' {
		j++
	}
	out := append(append(append([]byte{}, b[:i]...), section...), b[j:]...)
	return os.WriteFile(path, out, 0o644)
}
