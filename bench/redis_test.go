package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/bloom"
	"github.com/replayguard/replayguard/bloom/bloomcore"
	"github.com/replayguard/replayguard/confval"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/redisstore"
	rgoredis "github.com/replayguard/replayguard/redisstore/goredis"
	"github.com/replayguard/replayguard/redisstore/layout"
	"github.com/replayguard/replayguard/redisstore/redistest"
	"github.com/replayguard/replayguard/signature/hmacsig"
)

// goroutines is the concurrency of the Redis throughput benchmarks.
const goroutines = 64

// window is the span of signed timestamps (tolerance + future skew).
const window = 10 * time.Minute

func redisClient(b *testing.B, addrs ...string) *rgoredis.Client {
	b.Helper()
	c, err := rgoredis.New(redisstore.Config{Addrs: addrs, Timeout: confval.Duration(2 * time.Second)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	return c
}

// nonceKey returns a distinct 32-character nonce.
func nonceKey(run string, g, i uint64) string {
	s := run + "-" + strconv.FormatUint(g, 36) + "-" + strconv.FormatUint(i, 36)
	return s + strings.Repeat("_", max(32-len(s), 0))
}

var runSeq atomic.Uint64

// entry is a nonce as the guard records it: signed now, in whole seconds,
// expiring when the timestamp leaves the window.
func entry(key string) nonce.Entry {
	ts := time.Now().Truncate(time.Second)
	return nonce.Entry{Scope: benchKeyID, Key: key, Timestamp: ts, Expires: ts.Add(window)}
}

// parallelAdd runs add for b.N fresh nonces from goroutines goroutines and
// reports checks/s.
func parallelAdd(b *testing.B, add func(ctx context.Context, key string) error) {
	parallelAddFrom(b, goroutines, add)
}

// parallelAddFrom runs add for b.N fresh nonces from n goroutines (rounded
// up to a multiple of GOMAXPROCS) and reports checks/s.
func parallelAddFrom(b *testing.B, n int, add func(ctx context.Context, key string) error) {
	run := strconv.FormatUint(runSeq.Add(1), 36) + "." + strconv.FormatUint(rand.Uint64()%1e6, 36)
	var gid atomic.Uint64
	ctx := context.Background()
	b.SetParallelism((n + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		g := gid.Add(1)
		for i := uint64(0); pb.Next(); i++ {
			if err := add(ctx, nonceKey(run, g, i)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "checks/s")
}

// BenchmarkRedisNonce is one nonce check per op from 64 goroutines against
// one redis-server: exact mode (SET … NX GET PXAT), bloom mode (one
// BITFIELD) and, as the baseline, go-redis's plain SET NX with a TTL on the
// same client options.
func BenchmarkRedisNonce(b *testing.B) {
	srv := redistest.Start(b)
	c := redisClient(b, srv.Addr())
	flush := func() {
		if _, err := srv.Do("FLUSHALL"); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("exact", func(b *testing.B) {
		flush()
		s := redisstore.NewNonce(c, redisstore.WithTimeout(2*time.Second))
		parallelAdd(b, func(ctx context.Context, key string) error {
			return s.Add(ctx, entry(key))
		})
	})
	b.Run("bloom", func(b *testing.B) {
		flush()
		// Sized for the traffic: 10M nonces per window, so the benchmark
		// measures the common path (one BITFIELD), not growth.
		s, err := redisstore.NewBloomNonce(c, 10_000_000, 1e-9, window, redisstore.WithTimeout(2*time.Second))
		if err != nil {
			b.Fatal(err)
		}
		parallelAdd(b, func(ctx context.Context, key string) error {
			return s.Add(ctx, entry(key))
		})
	})
	b.Run("setnx", func(b *testing.B) {
		flush()
		parallelAdd(b, func(ctx context.Context, key string) error {
			ok, err := c.Unwrap().SetNX(ctx, "rg:n:"+key, "1", window).Result()
			if err == nil && !ok {
				err = fmt.Errorf("%s: taken", key)
			}
			return err
		})
	})
}

// BenchmarkRedisNoncePaired runs exact, bloom and plain SET NX in turns of
// 100 ms each for the whole benchmark time, 64 goroutines each turn, and
// reports the ratios of their times per check, so that a shared machine's
// changing load hits all three alike: bloom/exact (goal ≤ 1/0.7, bloom at
// least 0.7× exact's checks/s) and exact/setnx (goal ≤ 1/0.8).
func BenchmarkRedisNoncePaired(b *testing.B) {
	srv := redistest.Start(b)
	c := redisClient(b, srv.Addr())
	if _, err := srv.Do("FLUSHALL"); err != nil {
		b.Fatal(err)
	}
	exact := redisstore.NewNonce(c, redisstore.WithTimeout(2*time.Second))
	// Sized for about 17k checks/s over the window, as in BenchmarkRedisNonce.
	bloomStore, err := redisstore.NewBloomNonce(c, 10_000_000, 1e-9, window, redisstore.WithTimeout(2*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	adds := []func(ctx context.Context, key string) error{
		func(ctx context.Context, key string) error { return exact.Add(ctx, entry(key)) },
		func(ctx context.Context, key string) error { return bloomStore.Add(ctx, entry(key)) },
		func(ctx context.Context, key string) error {
			ok, err := c.Unwrap().SetNX(ctx, "rg:n:"+key, "1", window).Result()
			if err == nil && !ok {
				err = fmt.Errorf("%s: taken", key)
			}
			return err
		},
	}
	var done [3]int64
	var spent [3]time.Duration
	run := strconv.FormatUint(runSeq.Add(1), 36) + "." + strconv.FormatUint(rand.Uint64()%1e6, 36)
	var seq atomic.Uint64
	b.ResetTimer()
	for turn := 0; done[0]+done[1]+done[2] < int64(b.N) || turn%3 != 0; turn++ {
		i := turn % 3
		var count atomic.Int64
		deadline := time.Now().Add(100 * time.Millisecond)
		start := time.Now()
		var wg sync.WaitGroup
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx := context.Background()
				for time.Now().Before(deadline) {
					if err := adds[i](ctx, nonceKey(run, seq.Add(1), 0)); err != nil {
						b.Error(err)
						return
					}
					count.Add(1)
				}
			}()
		}
		wg.Wait()
		spent[i] += time.Since(start)
		done[i] += count.Load()
	}
	b.StopTimer()
	per := func(i int) float64 { return float64(spent[i]) / float64(done[i]) }
	b.ReportMetric(per(1)/per(0), "bloom/exact")
	b.ReportMetric(per(0)/per(2), "exact/setnx")
	b.ReportMetric(float64(done[0])/spent[0].Seconds(), "exact-checks/s")
	b.ReportMetric(float64(done[1])/spent[1].Seconds(), "bloom-checks/s")
	b.ReportMetric(float64(done[2])/spent[2].Seconds(), "setnx-checks/s")
}

// BenchmarkRedisShieldReplayFlood replays one nonce through the local
// shield: answered in process, no Redis call.
func BenchmarkRedisShieldReplayFlood(b *testing.B) {
	srv := redistest.Start(b)
	seen, err := bloom.NewMemory(1_000_000, bloomcore.DefaultShieldFalsePositiveRate, window)
	if err != nil {
		b.Fatal(err)
	}
	s := bloomcore.NewShield(redisstore.NewNonce(redisClient(b, srv.Addr())), seen)
	ctx := context.Background()
	now := time.Now()
	e := nonce.Entry{Scope: benchKeyID, Key: "flooded-nonce-0123456789abcdef", Timestamp: now, Expires: now.Add(window)}
	if err := s.Add(ctx, e); err != nil {
		b.Fatal(err)
	}
	calls := commandCalls(b, srv)
	b.SetParallelism((goroutines + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if s.Add(ctx, e) == nil {
				b.Error("replay accepted")
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "checks/s")
	after := commandCalls(b, srv)
	b.ReportMetric(float64(after["set"]-calls["set"])/float64(b.N), "redis-calls/op")
}

// BenchmarkRedisMemory records 1,000,000 distinct 32-character nonces per
// op, their signed timestamps spread over the 10-minute window, and
// reports Redis's used_memory growth per nonce, measured after the client
// has closed its connections. Bloom is sized for exactly that: capacity
// 1,000,000 per window at 1e-9.
func BenchmarkRedisMemory(b *testing.B) {
	const n = 1_000_000
	srv := redistest.Start(b)
	stores := []struct {
		name string
		new  func(c redisstore.Client) nonce.Store
	}{
		{"exact", func(c redisstore.Client) nonce.Store {
			return redisstore.NewNonce(c, redisstore.WithTimeout(2*time.Second))
		}},
		{"bloom", func(c redisstore.Client) nonce.Store {
			s, err := redisstore.NewBloomNonce(c, n, 1e-9, window, redisstore.WithTimeout(2*time.Second))
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
	}
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			var perNonce float64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if _, err := srv.Do("FLUSHALL"); err != nil {
					b.Fatal(err)
				}
				before := usedMemory(b, srv)
				c, err := rgoredis.New(redisstore.Config{Addrs: []string{srv.Addr()}, Timeout: confval.Duration(2 * time.Second)})
				if err != nil {
					b.Fatal(err)
				}
				s := st.new(c)
				b.StartTimer()
				base := time.Now().Add(-window / 2)
				var next atomic.Int64
				var wg sync.WaitGroup
				for g := 0; g < goroutines; g++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						ctx := context.Background()
						for {
							j := next.Add(1) - 1
							if j >= n {
								return
							}
							// Signed timestamps spread evenly over the window.
							ts := base.Add(time.Duration(j) * window / n).Truncate(time.Second)
							e := nonce.Entry{Scope: benchKeyID, Key: nonceKey("m"+strconv.Itoa(i), uint64(g), uint64(j)), Timestamp: ts, Expires: time.Now().Add(window)}
							if err := s.Add(ctx, e); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.StopTimer()
				// Measure the data, not the connections' buffers.
				_ = c.Close()
				time.Sleep(200 * time.Millisecond)
				perNonce = float64(usedMemory(b, srv)-before) / n
				b.StartTimer()
			}
			b.ReportMetric(perNonce, "B/nonce")
		})
	}
}

// BenchmarkRedisRoundTrips serves signed requests through a Guard whose
// stores are on Redis and counts, per request, the round trips the client
// made (a go-redis hook; a pipeline counts once), the commands clients
// sent as the server saw them (MONITOR, which leaves out what scripts run)
// and, from INFO commandstats, the script runs (EVALSHA and EVAL) and the
// nonce writes (SET, BITFIELD; inside a script or not). Each case runs on
// a standalone server and on a 3-master Cluster under each tagging, with
// the idempotency store given the nonce store ("joint", what package stores
// builds) and without it ("separate": the nonce, then the claim).
func BenchmarkRedisRoundTrips(b *testing.B) {
	srv := redistest.Start(b)
	cl := redistest.StartCluster(b)
	topologies := []struct {
		name    string
		addrs   []string
		servers []*redistest.Server
		tag     layout.Tagging
	}{
		{"standalone", []string{srv.Addr()}, []*redistest.Server{srv}, layout.TagKey},
		{"cluster-key", cl.Addrs(), cl.Masters(), layout.TagKey},
		{"cluster-principal", cl.Addrs(), cl.Masters(), layout.TagPrincipal},
	}
	cases := []struct {
		name, mode, method string
		sameKey            bool
	}{
		{"get-exact", "exact", http.MethodGet, false},
		{"get-bloom", "bloom", http.MethodGet, false},
		{"post-exact", "exact", http.MethodPost, false},
		{"post-bloom", "bloom", http.MethodPost, false},
		{"post-replay-exact", "exact", http.MethodPost, true},
	}
	for _, top := range topologies {
		for _, tc := range cases {
			for _, joint := range []bool{false, true} {
				if tc.method == http.MethodGet && joint {
					continue // a GET claims nothing
				}
				name := top.name + "/" + tc.name + "/separate"
				if joint {
					name = top.name + "/" + tc.name + "/joint"
				}
				b.Run(name, func(b *testing.B) {
					roundTripsCase(b, top.addrs, top.servers, top.tag, tc.mode, tc.method, tc.sameKey, joint)
				})
			}
		}
	}
}

func roundTripsCase(b *testing.B, addrs []string, servers []*redistest.Server, tag layout.Tagging, mode, method string, sameKey, joint bool) {
	c := redisClient(b, addrs...)
	var rt roundTrips
	c.Unwrap().AddHook(&rt)
	prefix := "rt" + strconv.FormatUint(runSeq.Add(1), 10)
	opts := []redisstore.Option{redisstore.WithKeyPrefix(prefix), redisstore.WithTagging(tag), redisstore.WithTimeout(2 * time.Second)}
	var ns nonce.Store = redisstore.NewNonce(c, opts...)
	if mode == "bloom" {
		// Sized for the traffic, so no partition grows.
		bs, err := redisstore.NewBloomNonce(c, 1_000_000, 1e-9, 2*time.Hour, opts...)
		if err != nil {
			b.Fatal(err)
		}
		ns = bs
	}
	idemOpts := opts
	if joint {
		idemOpts = append(idemOpts, redisstore.WithNonceStore(ns))
	}
	g, err := replayguard.New(replayguard.Config{
		Keys:      []replayguard.KeyConfig{{ID: benchKeyID, Secrets: []string{benchSecret}}},
		Timestamp: replayguard.TimestampConfig{Tolerance: replayguard.Duration(time.Hour), FutureSkew: replayguard.Duration(time.Hour)},
	}, replayguard.WithNonceStore(ns), replayguard.WithIdempotencyStore(redisstore.NewIdempotency(c, idemOpts...)))
	if err != nil {
		b.Fatal(err)
	}
	h := g.Middleware(bare)
	idemKey := "op-" + strconv.FormatUint(rand.Uint64(), 36)
	signedReq := func() *http.Request {
		var body []byte
		if method == http.MethodPost {
			body = []byte(`{"amount":100}`)
		}
		r, _ := http.NewRequest(method, "http://api.example.com/v1/charges", bytes.NewReader(body))
		if method == http.MethodPost {
			k := idemKey
			if !sameKey {
				k = "op-" + strconv.FormatUint(rand.Uint64(), 36)
			}
			r.Header.Set("Idempotency-Key", k)
		}
		if err := (&hmacsig.Signer{KeyID: benchKeyID, Secret: []byte(benchSecret)}).Sign(r, body); err != nil {
			b.Fatal(err)
		}
		r.RequestURI = "/v1/charges"
		return r
	}
	w := &recorder{discard: discard{h: http.Header{}}}
	serve := func(r *http.Request) {
		w.code = 0
		h.ServeHTTP(w, r)
		if w.code != http.StatusOK {
			b.Fatalf("status %d", w.code)
		}
	}
	// The first requests load the scripts and, for a replay, run the
	// operation once.
	serve(signedReq())
	serve(signedReq())
	reqs := make([]*http.Request, b.N)
	for i := range reqs {
		reqs[i] = signedReq()
	}
	monitors := make([]*redistest.Monitor, len(servers))
	for i, s := range servers {
		monitors[i] = s.Monitor(b)
		monitors[i].Calls()
	}
	before := clusterCalls(b, servers)
	rt.reset()
	b.ResetTimer()
	for _, r := range reqs {
		serve(r)
	}
	b.StopTimer()
	after := clusterCalls(b, servers)
	sent := 0
	for _, m := range monitors {
		for _, name := range m.Calls() {
			switch name {
			case "set", "bitfield", "pexpireat", "evalsha", "eval":
				sent++
			}
		}
	}
	n := float64(b.N)
	d := func(names ...string) float64 {
		var v int64
		for _, name := range names {
			v += after[name] - before[name]
		}
		return float64(v) / n
	}
	b.ReportMetric(float64(rt.calls.Load())/n, "client-rt/req")
	b.ReportMetric(float64(sent)/n, "server-calls/req")
	b.ReportMetric(d("evalsha", "eval"), "scripts/req")
	b.ReportMetric(d("set", "bitfield"), "nonce-writes/req")
}

// clusterCalls sums INFO commandstats over servers.
func clusterCalls(b *testing.B, servers []*redistest.Server) map[string]int64 {
	out := map[string]int64{}
	for _, s := range servers {
		for k, v := range commandCalls(b, s) {
			out[k] += v
		}
	}
	return out
}

// roundTrips is a go-redis hook counting round trips: each command sent
// alone and each pipeline.
type roundTrips struct{ calls atomic.Int64 }

func (r *roundTrips) reset() { r.calls.Store(0) }

func (r *roundTrips) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (r *roundTrips) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		switch cmd.Name() {
		case "set", "bitfield", "bitfield_ro", "pexpireat", "evalsha", "eval":
			r.calls.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		if len(cmds) > 0 {
			r.calls.Add(1)
		}
		return next(ctx, cmds)
	}
}

// BenchmarkRedisClusterTagging sends one principal's nonces to a 3-master
// cluster with each hash-tag strategy and reports the checks per second and
// the share of keys on the busiest master.
func BenchmarkRedisClusterTagging(b *testing.B) {
	cl := redistest.StartCluster(b)
	c := redisClient(b, cl.Addrs()...)
	for _, tag := range []layout.Tagging{layout.TagKey, layout.TagPrincipal} {
		b.Run(tag.String(), func(b *testing.B) {
			prefix := "tag" + strconv.FormatUint(runSeq.Add(1), 10)
			s := redisstore.NewNonce(c, redisstore.WithKeyPrefix(prefix), redisstore.WithTagging(tag), redisstore.WithTimeout(2*time.Second))
			parallelAdd(b, func(ctx context.Context, key string) error {
				now := time.Now()
				return s.Add(ctx, nonce.Entry{Scope: "one-principal", Key: key, Timestamp: now, Expires: now.Add(window)})
			})
			b.StopTimer()
			var counts []int
			total := 0
			for _, m := range cl.Masters() {
				r, err := m.Do("EVAL", "return #redis.call('KEYS', ARGV[1])", "0", prefix+":*")
				if err != nil {
					b.Fatal(err)
				}
				k, _ := strconv.Atoi(r)
				counts = append(counts, k)
				total += k
			}
			sort.Ints(counts)
			if total > 0 {
				b.ReportMetric(float64(counts[len(counts)-1])/float64(total), "busiest-master-share")
			}
		})
	}
}

func usedMemory(b *testing.B, srv *redistest.Server) int64 {
	b.Helper()
	r, err := srv.Do("INFO", "memory")
	if err != nil {
		b.Fatal(err)
	}
	v, err := strconv.ParseInt(redistest.InfoField(r, "used_memory"), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return v
}

func commandCalls(b *testing.B, srv *redistest.Server) map[string]int64 {
	b.Helper()
	r, err := srv.Do("INFO", "commandstats")
	if err != nil {
		b.Fatal(err)
	}
	return redistest.CommandCalls(r)
}

// BenchmarkRedisPipelining runs nonce checks (exact SET … NX GET) and
// covered requests' nonce-and-claim script runs from 2, 8 and 64
// goroutines on one redis-server: each call on a connection of its own
// ("plain": go-redis's pool, as goredis.Wrap uses a client), and as
// goredis.New's client makes them ("autopipeline": while more than a few
// calls are in flight, their commands are written together and their
// replies read together on go-redis's autopipeliner). It reports the calls
// per second and the CPU time per call of this process (the client) and of
// redis-server.
func BenchmarkRedisPipelining(b *testing.B) {
	srv := redistest.Start(b)
	for _, callers := range []int{2, 8, 64} {
		for _, variant := range []string{"plain", "autopipeline"} {
			for _, op := range []string{"nonce", "nonce-claim"} {
				b.Run(fmt.Sprintf("%s/%s/callers-%d", variant, op, callers), func(b *testing.B) {
					pipelining(b, srv, variant, op, callers)
				})
			}
		}
	}
}

func pipelining(b *testing.B, srv *redistest.Server, variant, op string, callers int) {
	base := redisClient(b, srv.Addr())
	var c redisstore.Client = base
	if variant == "plain" {
		c = rgoredis.Wrap(base.Unwrap())
	}
	prefix := "pl" + strconv.FormatUint(runSeq.Add(1), 10)
	n := redisstore.NewNonce(c, redisstore.WithKeyPrefix(prefix), redisstore.WithTimeout(2*time.Second))
	s := redisstore.NewIdempotency(c, redisstore.WithKeyPrefix(prefix), redisstore.WithTimeout(2*time.Second), redisstore.WithNonceStore(n))
	fp := [32]byte{1}
	add := func(ctx context.Context, key string) error { return n.Add(ctx, entry(key)) }
	if op == "nonce-claim" {
		add = func(ctx context.Context, key string) error {
			_, nerr, cerr := s.ClaimWithNonce(ctx, entry(key), benchKeyID, benchKeyID+"\x00"+key, fp, time.Minute)
			return errors.Join(nerr, cerr)
		}
	}
	_ = add(context.Background(), "warm-"+prefix) // loads the script
	cpu0, redis0 := processCPU(), redisCPU(b, srv)
	parallelAddFrom(b, callers, add)
	b.StopTimer()
	cpu1, redis1 := processCPU(), redisCPU(b, srv)
	b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "client-cpu-µs/op")
	b.ReportMetric(float64((redis1-redis0).Microseconds())/float64(b.N), "redis-cpu-µs/op")
}

// processCPU returns the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU returns the user and system CPU time srv has used (INFO cpu).
func redisCPU(b *testing.B, srv *redistest.Server) time.Duration {
	b.Helper()
	r, err := srv.Do("INFO", "cpu")
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, f := range []string{"used_cpu_user", "used_cpu_sys"} {
		v, err := strconv.ParseFloat(redistest.InfoField(r, f), 64)
		if err != nil {
			b.Fatal(err)
		}
		total += v
	}
	return time.Duration(total * float64(time.Second))
}
