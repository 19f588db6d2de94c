package reliability

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/replayguard/replayguard/signature/hmacsig"
	"github.com/stretchr/testify/require"
)

// The one key every gateway verifies, and the Host every request is signed
// for, so that one signed request can be sent to any gateway.
const (
	keyID      = "client-a"
	secret     = "reliability-secret-0123456789abcdef"
	signedHost = "api.example"
)

// build compiles the replayguard binary once per test run into a temporary
// directory that TestMain removes.
var build struct {
	sync.Once
	dir, path string
	err       error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// binary returns the path of the replayguard binary, building it on first
// use without the race detector: the gateways' heap figures are those of a
// production build.
func binary(t *testing.T) string {
	t.Helper()
	build.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			build.err = err
			return
		}
		if build.dir, err = os.MkdirTemp("", "replayguard-reliability-"); err != nil {
			build.err = err
			return
		}
		build.path = filepath.Join(build.dir, "replayguard")
		out, err := exec.Command(goTool, "build", "-o", build.path, "github.com/replayguard/replayguard/cmd/replayguard").CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	require.NoError(t, build.err)
	return build.path
}

// skipShort skips the suite under go test -short.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("reliability suite: skipped under -short")
	}
}

// gatewayConfig is the part of a gateway's YAML configuration the scenarios
// vary; the rest is fixed: loopback listeners (on free ports unless set),
// one hmac key.
type gatewayConfig struct {
	upstream     string
	listen       string // default 127.0.0.1:0; fixed (freeAddr) to keep it across a restart
	admin        string // default 127.0.0.1:0
	nonceStore   string // memory (default), redis or disk
	nonceMode    string // exact (default) or bloom
	maxEntries   int
	idemStore    string // memory (default), redis or disk
	idemTTL      string
	lease        string
	tolerance    string
	redisAddrs   []string
	redisTimeout string
	maxBodyBytes int
	diskPath     string // the disk store's directory, with fsync on
}

func (c gatewayConfig) yaml() string {
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %s\nadmin_listen: %s\nupstream: %s\n", or(c.listen, "127.0.0.1:0"), or(c.admin, "127.0.0.1:0"), c.upstream)
	fmt.Fprintf(&b, "keys:\n  - id: %s\n    secrets: [%s]\n", keyID, secret)
	if c.maxBodyBytes > 0 {
		fmt.Fprintf(&b, "max_body_bytes: %d\n", c.maxBodyBytes)
	}
	tol := or(c.tolerance, "5m")
	fmt.Fprintf(&b, "timestamp: {tolerance: %s, future_skew: %s}\n", tol, tol)
	fmt.Fprintf(&b, "nonce: {store: %s, mode: %s, max_entries: %d}\n", or(c.nonceStore, "memory"), or(c.nonceMode, "exact"), c.maxEntries)
	fmt.Fprintf(&b, "idempotency: {store: %s, ttl: %s, lease: %s}\n", or(c.idemStore, "memory"), or(c.idemTTL, "1h"), or(c.lease, "30s"))
	if len(c.redisAddrs) > 0 {
		fmt.Fprintf(&b, "redis: {addrs: [%s], timeout: %s, key_prefix: rel}\n", strings.Join(c.redisAddrs, ", "), or(c.redisTimeout, "1s"))
	}
	if c.diskPath != "" {
		fmt.Fprintf(&b, "disk: {path: %s, fsync: true}\n", c.diskPath)
	}
	b.WriteString("fail_mode: closed\n")
	return b.String()
}

// gateway is a running `replayguard serve` process.
type gateway struct {
	name        string
	config      string // the configuration file
	addr, admin string
	cmd         *exec.Cmd
	logs        *syncBuffer
	exited      chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startGateways starts n gateways on cfg concurrently.
func startGateways(t *testing.T, n int, cfg gatewayConfig) []*gateway {
	t.Helper()
	binary(t) // build here, not in the goroutines below
	gws := make([]*gateway, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range gws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gws[i], errs[i] = startGateway(t, fmt.Sprintf("gw%d", i+1), cfg)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	return gws
}

// freeAddr returns a loopback address whose port is free now, for a gateway
// that keeps its address across a restart.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// startGateway writes cfg to a file and runs `replayguard serve` on it (see
// runGateway).
func startGateway(t *testing.T, name string, cfg gatewayConfig) (*gateway, error) {
	path := filepath.Join(t.TempDir(), "replayguard.yaml")
	if err := os.WriteFile(path, []byte(cfg.yaml()), 0o600); err != nil {
		return nil, err
	}
	return runGateway(t, name, path)
}

// restart runs a new process on g's configuration file, once g has exited:
// the same disk directory, and the same addresses when the configuration
// fixes them.
func (g *gateway) restart(t *testing.T, name string) (*gateway, error) {
	return runGateway(t, name, g.config)
}

// kill stops the gateway with SIGKILL and waits for it to exit.
func (g *gateway) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, g.cmd.Process.Signal(syscall.SIGKILL))
	select {
	case err := <-g.exited:
		g.exited <- err // for the cleanup's wait
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit on SIGKILL", g.name)
	}
}

// runGateway runs `replayguard serve` on the configuration file path,
// reading the bound addresses from the start-up log line. It is stopped
// with SIGTERM (then SIGKILL) in t.Cleanup; its logs are printed when the
// test failed.
func runGateway(t *testing.T, name, path string) (*gateway, error) {
	cmd := exec.Command(binary(t), "serve", "--config", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	g := &gateway{name: name, config: path, cmd: cmd, logs: &syncBuffer{}, exited: make(chan error, 1)}
	ready := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = g.logs.Write(append(append([]byte(nil), line...), '\n'))
			var rec map[string]any
			if json.Unmarshal(line, &rec) == nil && rec["msg"] == "replayguard serving" {
				ready <- rec
			}
		}
	}()
	go func() { g.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-g.exited
		}
		if t.Failed() {
			logs := g.logs.String()
			if len(logs) > 8<<10 {
				logs = "…" + logs[len(logs)-8<<10:]
			}
			t.Logf("%s logs:\n%s", g.name, logs)
		}
	})
	select {
	case rec := <-ready:
		g.addr, _ = rec["listen"].(string)
		g.admin, _ = rec["admin_listen"].(string)
		return g, nil
	case err := <-g.exited:
		g.exited <- err
		return nil, fmt.Errorf("%s exited at start: %v\n%s", name, err, g.logs.String())
	case <-time.After(60 * time.Second):
		return nil, fmt.Errorf("%s did not start:\n%s", name, g.logs.String())
	}
}

// countLog counts the gateway's log lines containing s.
func (g *gateway) countLog(s string) int { return strings.Count(g.logs.String(), s) }

// scrapeClient opens a connection per scrape, so that scraping leaves no
// idle connection (and no goroutine) behind in the gateway.
var scrapeClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

// metrics returns the gateway's /metrics samples by series (name plus
// labels as exposed).
func (g *gateway) metrics() (map[string]float64, error) {
	resp, err := scrapeClient.Get("http://" + g.admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s /metrics: %s", g.name, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

// goroutines returns the gateway's go_goroutines.
func (g *gateway) goroutines(t *testing.T) int {
	t.Helper()
	m, err := g.metrics()
	require.NoError(t, err)
	return int(m["go_goroutines"])
}

// monitor samples every gateway's heap, resident memory, goroutines and disk
// store once per interval until stopped.
type monitor struct {
	gws  []*gateway
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	samples []sample
}

type sample struct {
	at         time.Time
	gw         int
	heap, rss  float64 // bytes
	goroutines float64
	// The disk store's file size and live bytes, and the expired entries
	// it reclaimed (zero without a disk store).
	diskFile, diskLive, reclaimed float64
}

func startMonitor(gws []*gateway, every time.Duration) *monitor {
	m := &monitor{gws: gws, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			for i, g := range gws {
				if v, err := g.metrics(); err == nil {
					m.mu.Lock()
					m.samples = append(m.samples, sample{at: time.Now(), gw: i, heap: v["go_memstats_heap_inuse_bytes"],
						rss: v["process_resident_memory_bytes"], goroutines: v["go_goroutines"],
						diskFile: v["replayguard_disk_file_bytes"], diskLive: v["replayguard_disk_live_bytes"],
						reclaimed: v["replayguard_disk_reclaimed_total"]})
					m.mu.Unlock()
				}
			}
			select {
			case <-m.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return m
}

// finish stops sampling and returns the samples.
func (m *monitor) finish() []sample {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]sample(nil), m.samples...)
}

// peak returns the largest value f takes over samples taken in [from, to).
func peak(samples []sample, from, to time.Time, f func(sample) float64) float64 {
	var out float64
	for _, s := range samples {
		if !s.at.Before(from) && s.at.Before(to) {
			out = max(out, f(s))
		}
	}
	return out
}

// goroutinesByGateway returns each gateway's go_goroutines.
func goroutinesByGateway(t *testing.T, gws []*gateway) []int {
	t.Helper()
	out := make([]int, len(gws))
	for i, g := range gws {
		out[i] = g.goroutines(t)
	}
	return out
}

// idleGoroutines returns each gateway's goroutine count once it holds
// still (three equal readings 200ms apart, within five seconds): just after
// start the servers' goroutines may not all be running yet.
func idleGoroutines(t *testing.T, gws []*gateway) []int {
	t.Helper()
	out := make([]int, len(gws))
	for i, g := range gws {
		deadline := time.Now().Add(5 * time.Second)
		last, same := g.goroutines(t), 0
		for same < 2 && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
			n := g.goroutines(t)
			if n == last {
				same++
			} else {
				last, same = n, 0
			}
		}
		out[i] = last
	}
	return out
}

// settleGoroutines waits (up to limit) until every gateway's goroutine
// count is at most its baseline plus slack, then up to three more seconds
// for the baseline itself (connections still closing), and returns the
// last counts.
func settleGoroutines(t *testing.T, gws []*gateway, baseline []int, slack int, limit time.Duration) []int {
	t.Helper()
	within := func(now []int, slack int) bool {
		for i := range now {
			if now[i] > baseline[i]+slack {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(limit)
	for {
		now := goroutinesByGateway(t, gws)
		if within(now, 0) || time.Now().After(deadline) {
			return now
		}
		if within(now, slack) {
			deadline = minTime(deadline, time.Now().Add(3*time.Second))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// upstream is the counting no-op upstream: it records every nonce and every
// Idempotency-Key it receives and answers each execution with a body that
// names it, so that a replayed response can be compared byte for byte.
// A request whose target has the query parameter hold is counted and then
// held, unanswered, until release is called or its client leaves.
type upstream struct {
	*httptest.Server
	executions atomic.Int64
	hold       chan struct{}
	released   sync.Once

	mu     sync.Mutex
	nonces map[string]int
	keys   map[string]int
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{nonces: map[string]int{}, keys: map[string]int{}, hold: make(chan struct{})}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n := u.executions.Add(1)
		nonce, key := r.Header.Get("X-Nonce"), r.Header.Get("Idempotency-Key")
		u.mu.Lock()
		u.nonces[nonce]++
		if key != "" {
			u.keys[key]++
		}
		u.mu.Unlock()
		if r.URL.Query().Has("hold") {
			select {
			case <-u.hold:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Execution", strconv.FormatInt(n, 10))
		status := http.StatusOK
		if r.Method == http.MethodPost {
			status = http.StatusCreated
		}
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, `{"execution":%d,"method":%q,"target":%q,"nonce":%q,"key":%q}`, n, r.Method, r.URL.RequestURI(), nonce, key)
	}))
	t.Cleanup(func() {
		u.release()
		u.Close()
	})
	return u
}

// release lets the held requests, and those to come, through.
func (u *upstream) release() { u.released.Do(func() { close(u.hold) }) }

// runs returns how many times key reached the upstream.
func (u *upstream) runs(key string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.keys[key]
}

// seen returns how many nonces and keys reached the upstream more than once
// (counting every extra arrival), and how many nonces and keys it saw.
func (u *upstream) seen() (extraNonces, extraKeys, nonces, keys int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, n := range u.nonces {
		extraNonces += n - 1
	}
	for _, n := range u.keys {
		extraKeys += n - 1
	}
	return extraNonces, extraKeys, len(u.nonces), len(u.keys)
}

// signedReq is one signed request, which can be sent to any gateway.
type signedReq struct {
	method, target string
	header         http.Header
	body           []byte
	nonce, key     string
}

var signer = &hmacsig.Signer{KeyID: keyID, Secret: []byte(secret)}

// sign signs a request for signedHost with a fresh nonce and timestamp.
func sign(method, target, key string, body []byte) (*signedReq, error) {
	r, err := http.NewRequest(method, "http://"+signedHost+target, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if key != "" {
		r.Header.Set("Idempotency-Key", key)
	}
	if err := signer.Sign(r, body); err != nil {
		return nil, err
	}
	return &signedReq{method: method, target: target, header: r.Header, body: body, nonce: r.Header.Get("X-Nonce"), key: key}, nil
}

// to returns the request addressed to the gateway at addr, Host kept.
func (s *signedReq) to(ctx context.Context, addr string) *http.Request {
	r, err := http.NewRequestWithContext(ctx, s.method, "http://"+addr+s.target, bytes.NewReader(s.body))
	if err != nil {
		panic(err) // the target was parsed when signing
	}
	r.Header = s.header.Clone()
	r.Host = signedHost
	return r
}

// newClient returns the load client: keep-alive connections, no redirects,
// a generous timeout (nothing here asserts latency).
func newClient(conns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: 30 * time.Second},
		Timeout:   60 * time.Second,
	}
}

// problemCode extracts the code of a problem+json body.
func problemCode(b []byte) string {
	var p struct{ Code string }
	if json.Unmarshal(b, &p) != nil {
		return ""
	}
	return p.Code
}

func mib(b float64) float64 { return b / (1 << 20) }
