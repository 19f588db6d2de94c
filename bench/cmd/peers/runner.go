package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

type options struct {
	bin, work, nginx, redis string
	// gateway is the replayguard binary the serve targets run, "" for
	// the one in bin (which is always the load client).
	gateway                string
	rounds                 int
	duration               time.Duration
	rate                   float64
	concurrency, bodyBytes int
	preload                int
	targets                []string
	write                  string
}

// window is one timed measurement of a target.
type window struct {
	method string
	rate   float64 // requests/s; 0: as fast as the requests in flight go
}

// windows are measured in this order on each fresh target.
func (o options) windows() []window {
	return []window{{"POST", 0}, {"GET", 0}, {"POST", o.rate}, {"GET", o.rate}}
}

type runner struct {
	o        options
	targets  []target
	secret   string
	body     string // file holding the POST body
	upstream string // the no-op upstream's URL
	noop     *proc
	redisP   *proc
	// redisAddr is the run's redis-server, "" without one.
	redisAddr string
	hz        float64
	configs   map[string]string
	res       *results
}

func newRunner(o options) (*runner, error) {
	if o.rounds < 1 || o.duration <= 0 || o.rate <= 0 || o.concurrency < 1 || o.bodyBytes < 0 || o.preload < 0 {
		return nil, errors.New("want -rounds, -duration, -rate and -concurrency positive, -body and -preload not negative")
	}
	var err error
	if o.work, err = filepath.Abs(o.work); err != nil {
		return nil, err
	}
	if o.bin, err = filepath.Abs(o.bin); err != nil {
		return nil, err
	}
	if o.gateway == "" {
		o.gateway = filepath.Join(o.bin, "replayguard")
	} else if o.gateway, err = filepath.Abs(o.gateway); err != nil {
		return nil, err
	}
	r := &runner{o: o, hz: clockTicks(), configs: map[string]string{}}
	r.res = &results{Options: resultOptions{Rounds: o.rounds, Duration: o.duration.String(), Rate: o.rate,
		Concurrency: o.concurrency, BodyBytes: o.bodyBytes, Preload: o.preload}}
	if o.nginx == "" {
		o.nginx, _ = exec.LookPath("nginx")
	}
	if o.redis == "" {
		o.redis, _ = exec.LookPath("redis-server")
	}
	r.o = o
	have := map[string]bool{
		"caddy": fileExists(r.binary("caddy")),
		"nginx": o.nginx != "" && o.nginx != "none",
		"redis": o.redis != "" && o.redis != "none",
	}
	for i, name := range o.targets {
		t, ok := targetByName(strings.TrimSpace(name))
		if !ok {
			return nil, fmt.Errorf("unknown target %q (known: %s)", name, strings.Join(targetNames(), ", "))
		}
		if i == 0 && t.name != baseline {
			return nil, fmt.Errorf("the first target is the baseline, %q", baseline)
		}
		if t.needs != "" && !have[t.needs] {
			r.res.Notes = append(r.res.Notes, fmt.Sprintf("%s left out: no %s binary", t.name, t.needs))
			continue
		}
		r.targets = append(r.targets, t)
	}
	if len(r.targets) == 0 || r.targets[0].name != baseline {
		return nil, fmt.Errorf("the targets must start with the baseline, %q", baseline)
	}
	if r.secret, err = randomHex(16); err != nil {
		return nil, err
	}
	r.body = filepath.Join(o.work, "body")
	if err := os.WriteFile(r.body, bytes.Repeat([]byte("x"), o.bodyBytes), 0o600); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *runner) binary(name string) string { return filepath.Join(r.o.bin, name) }

// close stops the upstream and Redis.
func (r *runner) close() {
	r.redisP.stop()
	r.noop.stop()
}

// measure runs every round and returns the results, with an error those
// measured before it.
func (r *runner) measure(ctx context.Context) (*results, error) {
	res := r.res
	res.Command = commandLine()
	res.Machine = machineInfo(r)
	var err error
	if r.noop, err = startProc(r.o.work, "noop", nil, r.binary("noop")); err != nil {
		return nil, err
	}
	if err := r.noop.waitFor(ctx, "its address", func() bool { r.upstream = stdoutURL(r.noop, 0); return r.upstream != "" }); err != nil {
		return nil, err
	}
	for _, t := range r.targets {
		if t.redis {
			if err := r.startRedis(ctx); err != nil {
				return nil, err
			}
			break
		}
	}
	res.UptimeBefore = uptime()
	res.Started = time.Now().UTC()
rounds:
	for round := 1; round <= r.o.rounds; round++ {
		n := len(r.targets)
		for i := range n {
			t := r.targets[(i+round-1)%n]
			var samples []sample
			if samples, err = r.measureTarget(ctx, t, round); err != nil {
				err = fmt.Errorf("round %d, %s: %w", round, t.name, err)
				break rounds
			}
			res.Samples = append(res.Samples, samples...)
		}
	}
	res.Finished = time.Now().UTC()
	res.UptimeAfter = uptime()
	for _, t := range r.targets {
		res.Targets = append(res.Targets, targetInfo{Name: t.name, Label: t.label, Logs: t.logs, Config: r.configs[t.name]})
	}
	// What was measured before an error is returned with it.
	return res, err
}

// measureTarget starts t afresh, preloads it and measures its windows.
func (r *runner) measureTarget(ctx context.Context, t target, round int) ([]sample, error) {
	dir := filepath.Join(r.o.work, fmt.Sprintf("r%d-%s", round, t.name))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if t.redis {
		if err := redisCommand(r.redisAddr, "FLUSHALL"); err != nil {
			return nil, err
		}
	}
	p, url, err := r.start(ctx, t, dir)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	url += "/v1/charges"
	logf("round %d: %s at %s", round, t.name, url)
	if r.o.preload > 0 {
		s, err := r.load(ctx, url, window{"POST", 0}, r.o.preload, 30*time.Minute)
		if err != nil {
			return nil, fmt.Errorf("preload: %w", err)
		}
		if ok := s.ok(); ok != s.Sent {
			// A few refusals (a store timing out on a loaded machine)
			// are noted; many mean the target does not work.
			if 100*(s.Sent-ok) > s.Sent {
				return nil, fmt.Errorf("preload: %d of %d requests answered 2xx: %v", ok, s.Sent, s.Outcomes)
			}
			r.res.Notes = append(r.res.Notes, fmt.Sprintf("round %d, %s: preload answered %s", round, t.name, outcomes(s.Outcomes)))
		}
		logf("round %d: %s preloaded %d requests in %.1fs", round, t.name, s.Sent, s.Seconds)
	}
	var out []sample
	for _, w := range r.o.windows() {
		if p.exited() {
			return nil, fmt.Errorf("%s exited (%w); its stderr:\n%s", t.name, p.exitErr(), p.tail())
		}
		offset := fileSize(p.stderr)
		from := time.Since(p.started)
		ticks0, err := cpuTicks(p.cmd.Process.Pid)
		if err != nil {
			return nil, err
		}
		redis0 := r.redisTicks()
		s, err := r.load(ctx, url, w, 0, r.o.duration)
		if err != nil {
			return nil, err
		}
		ticks1, err := cpuTicks(p.cmd.Process.Pid)
		if err != nil {
			return nil, err
		}
		to := time.Since(p.started)
		smp := sample{Round: round, Target: t.name, Method: w.method, Rate: w.rate, Sent: s.Sent, OK: s.ok(),
			Seconds: s.Seconds, RPS: s.Throughput, P50: s.P50, P99: s.P99, Outcomes: s.Outcomes,
			CPUSeconds: float64(ticks1-ticks0) / r.hz, GCCPUSeconds: -1}
		if t.goRuntime {
			gc, cycles := gcCPUSince(p.stderr, offset, from, to)
			smp.GCCPUSeconds, smp.GCCycles = gc.Seconds(), cycles
		}
		if t.redis {
			smp.RedisCPUSeconds = float64(r.redisTicks()-redis0) / r.hz
		}
		logf("round %d: %s %s: %.0f req/s, %.1f µs CPU/request, p99 %.2f ms", round, t.name, w.label(), s.Throughput,
			smp.cpuPerRequest(), s.P99)
		out = append(out, smp)
	}
	return out, nil
}

func (w window) label() string {
	if w.rate == 0 {
		return w.method + " max"
	}
	return fmt.Sprintf("%s %g/s", w.method, w.rate)
}

// summary is the part of `replayguard load --json` the run reads.
type summary struct {
	Sent       int            `json:"sent"`
	Seconds    float64        `json:"seconds"`
	Throughput float64        `json:"requests_per_second"`
	Outcomes   map[string]int `json:"outcomes"`
	P50        float64        `json:"p50_ms"`
	P99        float64        `json:"p99_ms"`
}

// ok counts the 2xx answers.
func (s summary) ok() int {
	n := 0
	for k, v := range s.Outcomes {
		if len(k) == 3 && k[0] == '2' {
			n += v
		}
	}
	return n
}

// loadArgs is the `replayguard load` command of a window against url:
// POST with the body and a fresh Idempotency-Key, or GET without either.
func (r *runner) loadArgs(url string, w window, requests int, d time.Duration) []string {
	args := []string{r.binary("replayguard"), "load", "--secret", r.secret, "--key-id", keyID, "-X", w.method}
	if w.method == "POST" {
		args = append(args, "-d", "@"+r.body, "--idempotency-key=true")
	} else {
		args = append(args, "-d=", "--idempotency-key=false")
	}
	args = append(args, "--rate", strconv.FormatFloat(w.rate, 'f', -1, 64), "--concurrency", strconv.Itoa(r.o.concurrency),
		"--duration", d.String())
	if requests > 0 {
		args = append(args, "--requests", strconv.Itoa(requests))
	}
	return append(args, "--json", url)
}

// load runs `replayguard load` and reads its summary.
func (r *runner) load(ctx context.Context, url string, w window, requests int, d time.Duration) (summary, error) {
	args := r.loadArgs(url, w, requests, d)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return summary{}, fmt.Errorf("replayguard load: %w: %s", err, lastLine(stderr.String()))
	}
	var s summary
	if err := json.Unmarshal(out, &s); err != nil {
		return summary{}, fmt.Errorf("replayguard load: %w", err)
	}
	return s, nil
}

// startRedis starts the run's redis-server on a free loopback port, in
// memory only.
func (r *runner) startRedis(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	dir := filepath.Join(r.o.work, "redis")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	r.redisP, err = startProc(dir, "redis-server", nil, r.o.redis, "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--dir", dir, "--save", "", "--appendonly", "no")
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := r.redisP.waitFor(ctx, "PING", func() bool { return redisCommand(addr, "PING") == nil }); err != nil {
		return err
	}
	r.redisAddr = addr
	return nil
}

func (r *runner) redisTicks() int64 {
	if r.redisP == nil {
		return 0
	}
	t, _ := cpuTicks(r.redisP.cmd.Process.Pid)
	return t
}

// redisCommand sends one argument-less command (PING, FLUSHALL) and wants
// a simple-string reply.
func redisCommand(addr, cmd string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(c, "*1\r\n$%d\r\n%s\r\n", len(cmd), cmd); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+") {
		return fmt.Errorf("redis %s: %s", cmd, strings.TrimSpace(line))
	}
	return nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexAny(s, "\r\n"); i >= 0 {
		s = s[i+1:]
	}
	return s
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "peers: "+format+"\n", args...)
}

// uptime is the output of uptime(1), or /proc/loadavg without it.
func uptime() string {
	if out, err := exec.Command("uptime").Output(); err == nil {
		return strings.TrimSpace(string(out))
	}
	b, _ := os.ReadFile("/proc/loadavg")
	return "load average " + strings.TrimSpace(string(b))
}

// commandLine is how the run was started: bench/peers.sh sets
// PEERS_COMMAND to its own command line.
func commandLine() string {
	if c := os.Getenv("PEERS_COMMAND"); c != "" {
		return c
	}
	return strings.Join(os.Args, " ")
}

// machineInfo describes the machine and the versions of what runs.
func machineInfo(r *runner) machine {
	m := machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	version := func(argv ...string) string {
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			return ""
		}
		return lastLine(strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0])
	}
	for _, t := range r.targets {
		switch t.needs {
		case "caddy":
			if v := strings.Fields(version(r.binary("caddy"), "version")); len(v) > 0 {
				m.Caddy = "Caddy " + v[0]
			}
		case "nginx":
			m.Nginx = version(r.o.nginx, "-v")
		case "redis":
			m.Redis = version(r.o.redis, "--version")
		}
	}
	return m
}
