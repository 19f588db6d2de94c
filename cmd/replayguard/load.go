package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/signature/hmacsig"
)

// loadResult is what one request of a load run ended with.
type loadResult struct {
	latency time.Duration
	outcome string // "200", "401 nonce_replayed", "error: …"
}

type loadOptions struct {
	url, method, keyID string
	secret, body       []byte
	rate               float64
	duration           time.Duration
	requests           int
	concurrency        int
	idempotency        bool
	replayEvery        int
	timeout            time.Duration
}

func cmdLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCLI("load", "load --key-id ID (--secret S | --config FILE) [flags] URL", `Sends hmac-signed requests to a gateway at a steady rate and prints the
status counts and a latency histogram.`, stderr)
	c.interspersed = true
	fs := c.fs
	o := loadOptions{}
	cfgPath := fs.String("config", "", "configuration `file` holding the key's secret")
	secret := fs.String("secret", "", "secret instead of --config (plain, or base64:…)")
	fs.StringVar(&o.keyID, "key-id", "", "key `id` to sign with")
	fs.StringVar(&o.method, "X", http.MethodPost, "request `method`")
	data := fs.String("d", "{}", "request body, or @FILE")
	fs.Float64Var(&o.rate, "rate", 1000, "target requests per second (0: as fast as the workers go)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to send")
	fs.IntVar(&o.requests, "requests", 0, "stop after this many requests, or at --duration if sooner (0: no count)")
	fs.IntVar(&o.concurrency, "concurrency", 64, "requests in flight at most")
	fs.BoolVar(&o.idempotency, "idempotency-key", true, "send a fresh Idempotency-Key with every request")
	fs.IntVar(&o.replayEvery, "replay-every", 0, "every Nth request re-sends the previous one's exact headers (a replay); 0: never")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "per-request timeout")
	jsonOut := fs.Bool("json", false, "print the summary as JSON")
	if err := c.parse(args, stdout); err != nil {
		return err
	}
	if err := c.positional(1, 1, "one URL"); err != nil {
		return err
	}
	if o.keyID == "" {
		return c.fail("want --key-id")
	}
	o.url = fs.Arg(0)
	cfg, err := loadSignConfig(*cfgPath)
	if err != nil {
		return err
	}
	if o.secret, err = keySecret(cfg, replayguard.DefaultScheme, o.keyID, *secret); err != nil {
		return err
	}
	if strings.HasPrefix(*data, "@") {
		if o.body, err = os.ReadFile((*data)[1:]); err != nil {
			return err
		}
	} else {
		o.body = []byte(*data)
	}
	if o.concurrency < 1 || o.duration <= 0 || o.rate < 0 || o.requests < 0 {
		return errors.New("load: --concurrency and --duration must be positive, --rate and --requests not negative")
	}
	sum, err := runLoad(ctx, o, stderr)
	if err != nil {
		return err
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	sum.print(stdout)
	return nil
}

// loadSummary is the outcome of a run.
type loadSummary struct {
	Sent       int            `json:"sent"`
	Seconds    float64        `json:"seconds"`
	Throughput float64        `json:"requests_per_second"`
	Outcomes   map[string]int `json:"outcomes"`
	P50        float64        `json:"p50_ms"`
	P90        float64        `json:"p90_ms"`
	P99        float64        `json:"p99_ms"`
	Max        float64        `json:"max_ms"`
	Histogram  []histBucket   `json:"histogram"`
}

type histBucket struct {
	UpToMs float64 `json:"-"`
	Le     string  `json:"le_ms"`
	Count  int     `json:"count"`
}

func runLoad(ctx context.Context, o loadOptions, progress io.Writer) (*loadSummary, error) {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        o.concurrency,
		MaxIdleConnsPerHost: o.concurrency,
		IdleConnTimeout:     30 * time.Second,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: o.timeout}
	signer := &hmacsig.Signer{KeyID: o.keyID, Secret: o.secret}

	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	jobs := make(chan int, o.concurrency)
	results := make(chan loadResult, 4*o.concurrency)
	var wg sync.WaitGroup
	var prev atomic.Pointer[http.Header]
	for w := 0; w < o.concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range jobs {
				results <- o.one(client, signer, n, &prev)
			}
		}()
	}
	go func() {
		defer close(jobs)
		send := func(n int) bool {
			if o.requests > 0 && n > o.requests {
				return false
			}
			select {
			case jobs <- n:
				return true
			case <-ctx.Done():
				return false
			}
		}
		if o.rate <= 0 {
			for n := 1; send(n); n++ {
			}
			return
		}
		// Requests are due by the clock, not by ticks: a tick lost to a
		// starved CPU is made up at the next one, so the rate achieved is
		// the rate asked for whenever the gateway keeps up.
		interval := time.Duration(float64(time.Second) / o.rate)
		if interval < time.Millisecond {
			interval = time.Millisecond
		}
		t := time.NewTicker(interval)
		defer t.Stop()
		begin := time.Now()
		for n := 1; ; {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			due := int(time.Since(begin).Seconds() * o.rate)
			for ; n <= due; n++ {
				if !send(n) {
					return
				}
			}
		}
	}()
	go func() { wg.Wait(); close(results) }()

	start := time.Now()
	var lat []time.Duration
	outcomes := map[string]int{}
	bar := newProgress(progress, o.duration)
	for r := range results {
		lat = append(lat, r.latency)
		outcomes[r.outcome]++
		bar.update(time.Since(start), len(lat))
	}
	bar.done(time.Since(start), len(lat))
	return summarize(lat, outcomes, time.Since(start)), nil
}

// one sends request n: freshly signed, or every replayEvery-th a byte-for-
// byte replay of the previous request.
func (o loadOptions) one(client *http.Client, signer *hmacsig.Signer, n int, prev *atomic.Pointer[http.Header]) loadResult {
	req, err := http.NewRequest(o.method, o.url, bytes.NewReader(o.body))
	if err != nil {
		return loadResult{outcome: "error: " + err.Error()}
	}
	if p := prev.Load(); o.replayEvery > 0 && n%o.replayEvery == 0 && p != nil {
		req.Header = p.Clone()
	} else {
		if o.idempotency {
			req.Header.Set("Idempotency-Key", uuid.NewString())
		}
		if err := signer.Sign(req, o.body); err != nil {
			return loadResult{outcome: "error: " + err.Error()}
		}
		h := req.Header.Clone()
		prev.Store(&h)
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return loadResult{latency: time.Since(start), outcome: "error: " + shortErr(err)}
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	d := time.Since(start)
	outcome := fmt.Sprint(resp.StatusCode)
	if resp.Header.Get("Content-Type") == "application/problem+json" {
		var p struct{ Code string }
		if json.Unmarshal(b, &p) == nil {
			outcome += " " + p.Code
		}
	}
	return loadResult{latency: d, outcome: outcome}
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

func summarize(lat []time.Duration, outcomes map[string]int, elapsed time.Duration) *loadSummary {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	q := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		i := int(math.Ceil(p*float64(len(lat)))) - 1
		if i < 0 {
			i = 0
		}
		return ms(lat[i])
	}
	s := &loadSummary{Sent: len(lat), Seconds: elapsed.Seconds(), Outcomes: outcomes,
		P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: q(1)}
	if elapsed > 0 {
		s.Throughput = float64(len(lat)) / elapsed.Seconds()
	}
	for _, le := range []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000, math.Inf(1)} {
		n := sort.Search(len(lat), func(i int) bool { return ms(lat[i]) > le })
		s.Histogram = append(s.Histogram, histBucket{UpToMs: le, Le: fmt.Sprint(le), Count: n})
	}
	return s
}

func (s *loadSummary) print(w io.Writer) {
	fmt.Fprintf(w, "\n%d requests in %.1fs: %.0f req/s\n", s.Sent, s.Seconds, s.Throughput)
	fmt.Fprintf(w, "latency  p50 %.3fms  p90 %.3fms  p99 %.3fms  max %.3fms\n\n", s.P50, s.P90, s.P99, s.Max)
	prevCount := 0
	for _, b := range s.Histogram {
		n := b.Count - prevCount
		prevCount = b.Count
		label := fmt.Sprintf("≤ %gms", b.UpToMs)
		if math.IsInf(b.UpToMs, 1) {
			label = "> 1000ms"
		}
		width := 0
		if s.Sent > 0 {
			width = n * 50 / s.Sent
		}
		fmt.Fprintf(w, "  %-10s %8d %s\n", label, n, strings.Repeat("█", width))
	}
	fmt.Fprintln(w, "\noutcomes:")
	keys := make([]string, 0, len(s.Outcomes))
	for k := range s.Outcomes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %-40s %8d\n", k, s.Outcomes[k])
	}
}

// progress draws a one-line progress bar, at most ten times a second.
type progress struct {
	w     io.Writer
	total time.Duration
	last  time.Time
}

func newProgress(w io.Writer, total time.Duration) *progress { return &progress{w: w, total: total} }

func (p *progress) update(elapsed time.Duration, n int) {
	if time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	frac := float64(elapsed) / float64(p.total)
	if frac > 1 {
		frac = 1
	}
	filled := int(frac * 30)
	rate := 0.0
	if elapsed > 0 {
		rate = float64(n) / elapsed.Seconds()
	}
	fmt.Fprintf(p.w, "\r[%s%s] %5.1fs %8d sent %8.0f req/s", strings.Repeat("=", filled), strings.Repeat(" ", 30-filled), elapsed.Seconds(), n, rate)
}

func (p *progress) done(elapsed time.Duration, n int) {
	p.last = time.Time{}
	p.update(elapsed, n)
	fmt.Fprintln(p.w)
}
