// Command peers measures replayguard beside its peers in one interleaved
// run; bench/peers.sh builds what it runs and starts it. Each round, every
// target — the baseline (bench/cmd/bareproxy: a bare httputil.ReverseProxy
// with the binary's Transport settings and a BufferPool), Caddy's own
// reverse_proxy, Caddy with the replayguard directive, `replayguard serve`
// with memory stores, the same with idempotency off, with Redis exact and
// Redis Bloom nonces, the binary's default configuration (disk store,
// access log on) and nginx proxy_pass when nginx is installed — is started
// as a fresh process in front of one no-op upstream (bench/cmd/noop), sent
// a preload of covered POSTs (200,000 by default: as many idempotency
// records for the targets that keep them), then measured in four timed
// windows, all driven by `replayguard load`:
//
//   - POST, 1 KiB body, a fresh Idempotency-Key, as fast as 64 requests in
//     flight go: requests/s, and the CPU time the target's processes used
//     per request (utime + stime from /proc/PID/stat);
//   - GET, no body (nonce only), the same;
//   - POST at a fixed 1,000 requests/s: p99 latency;
//   - GET at 1,000 requests/s: p99 latency.
//
// The targets take turns within a round (the order rotated by one each
// round) and every ratio is taken between two targets of the same round;
// the tables show the median over the rounds and the range. Go targets run
// with GODEBUG=gctrace=1, from which each window's GC CPU time is summed.
//
// Usage:
//
//	peers -bin DIR -work DIR [-rounds 7] [-duration 10s] [-targets LIST] [-write BENCHMARKS.md]
//	peers -render results.json [-write BENCHMARKS.md]
//
// DIR holds replayguard, noop, bareproxy and caddy (without caddy the Caddy
// targets are left out); nginx and redis-server are looked up in PATH (or
// -nginx, -redis-server; absent, their targets are left out). The results
// go to -work/results.json; the Markdown report to stdout, and with -write
// into the file given, between the lines "<!-- peers:begin -->" and
// "<!-- peers:end -->".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(1)
	}
}

func run() error {
	var o options
	flag.StringVar(&o.bin, "bin", "", "`directory` holding replayguard, noop, bareproxy and caddy")
	flag.StringVar(&o.work, "work", "", "`directory` for configurations, logs, data and results (on a real file system: the default target keeps its disk store there)")
	flag.StringVar(&o.gateway, "gateway", "", "replayguard `binary` the serve targets run (default: the one in -bin, which is always the load client)")
	flag.StringVar(&o.nginx, "nginx", "", "nginx `binary` (default: nginx in PATH; none: nginx left out)")
	flag.StringVar(&o.redis, "redis-server", "", "redis-server `binary` (default: redis-server in PATH; none: Redis targets left out)")
	flag.IntVar(&o.rounds, "rounds", 7, "rounds; each target measured once per round")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each timed window")
	flag.Float64Var(&o.rate, "rate", 1000, "fixed rate of the latency windows, requests/s")
	flag.IntVar(&o.concurrency, "concurrency", 64, "requests in flight")
	flag.IntVar(&o.bodyBytes, "body", 1024, "POST body bytes")
	flag.IntVar(&o.preload, "preload", 200000, "covered POSTs sent to each fresh target before its windows")
	targets := flag.String("targets", strings.Join(targetNames(), ","), "comma-separated targets, the baseline first")
	flag.StringVar(&o.write, "write", "", "Markdown `file` whose peers section the report replaces")
	render := flag.String("render", "", "render the report of a results `file` instead of measuring")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}

	var res *results
	if *render != "" {
		var err error
		if res, err = readResults(*render); err != nil {
			return err
		}
	} else {
		if o.bin == "" || o.work == "" {
			return errors.New("want -bin and -work (or -render)")
		}
		o.targets = strings.Split(*targets, ",")
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		r, err := newRunner(o)
		if err != nil {
			return err
		}
		res, err = r.measure(ctx)
		r.close()
		if err != nil {
			if res != nil && len(res.Samples) > 0 {
				// What was measured is kept for -render.
				path := filepath.Join(o.work, "results.partial.json")
				if serr := res.save(path); serr == nil {
					fmt.Fprintln(os.Stderr, "peers: what was measured is in", path)
				}
			}
			return err
		}
		path := filepath.Join(o.work, "results.json")
		if err := res.save(path); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "peers: results in", path)
	}
	md := res.markdown()
	fmt.Print(md)
	if o.write != "" {
		return splice(o.write, md)
	}
	return nil
}
