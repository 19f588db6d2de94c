// Command ratios reads `go test -bench` output on stdin and prints each goal
// ratio (medians over -count runs, both sides from the same run) and whether
// it is met.
package main

import (
	"bufio"
	"fmt"
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
	samples := map[string]map[string][]float64{}
	sc := bufio.NewScanner(os.Stdin)
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
	fmt.Println("\nGoals (medians; ratio = benchmark / baseline from the same run)")
	failed := 0
	for _, g := range goals {
		v, ok := median(samples, g.Bench, g.Metric)
		if !ok {
			fmt.Printf("  %-58s  not measured\n", g.Name)
			continue
		}
		got, unit := v, g.Metric
		if g.Base != "" {
			base, ok := median(samples, g.Base, g.Metric)
			if !ok || base == 0 {
				fmt.Printf("  %-58s  baseline not measured\n", g.Name)
				continue
			}
			got, unit = v/base, "×"
		}
		verdict := "info"
		if g.Max > 0 {
			verdict = "met"
			if got > g.Max {
				verdict = "NOT MET"
				failed++
			}
			fmt.Printf("  %-58s  %8.2f %-9s goal ≤ %g  %s\n", g.Name, got, unit, g.Max, verdict)
			continue
		}
		fmt.Printf("  %-58s  %8.2f %-9s %s\n", g.Name, got, unit, verdict)
	}
	if failed > 0 {
		fmt.Printf("%d goal(s) not met\n", failed)
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
