package traefik_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/traefik/yaegi/interp"
	"github.com/traefik/yaegi/stdlib"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/bloom/bloomcore"
	"github.com/replayguard/replayguard/plugin/traefik/internal/tree"
	"github.com/replayguard/replayguard/redisstore"
)

// bloomSizings returns the (m, k) of every sub-filter the stores build for
// capacities 10 to 10⁹ by decade at rates 10⁻¹ to 10⁻¹² by decade over the
// default window (the memory store's and the Redis store's, as package
// bloom's test of the compiled code lists them), and filters of about 2³²
// bits.
func bloomSizings(t testing.TB) [][2]uint {
	t.Helper()
	var out [][2]uint
	const window = 10 * time.Minute
	for c := uint(10); c <= 1_000_000_000; c *= 10 {
		pc, err := bloomcore.PartitionCapacity(c, bloomcore.DefaultBucketWidth, window, bloomcore.DefaultPartitions)
		require.NoError(t, err)
		for p := 1e-1; p >= 1e-12; p /= 10 {
			for i := 0; i < bloomcore.MaxSubFilters; i++ {
				m, k := bloomcore.Optimal(bloomcore.SubCapacity(pc, i), bloomcore.SubRate(p, i))
				out = append(out, [2]uint{m, k})
			}
			b, err := redisstore.NewBloomNonce(nil, c, p, window)
			require.NoError(t, err)
			for i := 0; ; i++ {
				_, m, k := b.SubFilter(i)
				if m > 1<<32-32 {
					break
				}
				out = append(out, [2]uint{m, k})
			}
		}
	}
	for _, m := range []uint{1<<32 - 64, 1<<32 - 32, 1<<32 - 1, 1 << 32, 1<<32 + 1} {
		for _, k := range []uint{1, 7, 31, 44} {
			out = append(out, [2]uint{m, k})
		}
	}
	return out
}

// interpretedLocations loads package bloomcore from the assembled plugin
// tree (its vendored copy, what Traefik runs) into Yaegi and returns its
// Locations.
func interpretedLocations(t *testing.T) func([]byte, uint) []uint64 {
	t.Helper()
	vendor := filepath.Join(pluginGoPath(t), "src", filepath.FromSlash(tree.Module), "vendor")
	gopath := t.TempDir()
	for _, pkg := range []string{"bloom/bloomcore", "nonce"} {
		src := filepath.Join(vendor, filepath.FromSlash(coreModule), filepath.FromSlash(pkg))
		dst := filepath.Join(gopath, "src", filepath.FromSlash(coreModule), filepath.FromSlash(pkg))
		require.NoError(t, os.MkdirAll(dst, 0o755))
		entries, err := os.ReadDir(src)
		require.NoError(t, err)
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(src, e.Name()))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644))
		}
	}
	i := interp.New(interp.Options{GoPath: gopath})
	require.NoError(t, i.Use(stdlib.Symbols))
	_, err := i.Eval(`import "` + coreModule + `/bloom/bloomcore"`)
	require.NoError(t, err)
	v, err := i.Eval("bloomcore.Locations")
	require.NoError(t, err)
	f, ok := v.Interface().(func([]byte, uint) []uint64)
	require.True(t, ok, "Locations is %T", v.Interface())
	return f
}

// Under the interpreter Traefik embeds, bloomcore.Locations is
// bits-and-blooms' Locations, before and after the modulo, over ten
// thousand random elements spread over every (m, k) the stores' sizing
// produces: the plugin's Bloom bits are where the binary puts them.
func TestLocationsUnderYaegi(t *testing.T) {
	locations := interpretedLocations(t)
	sizes := bloomSizings(t)
	rng := rand.New(rand.NewPCG(7, 8))
	const chars = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-._~"
	for n := 0; n < 10_000; n++ {
		var data []byte
		if n%2 == 0 {
			data = make([]byte, rng.IntN(80))
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
		} else {
			data = []byte("client-a\x00")
			for i := 16 + rng.IntN(113); i > 0; i-- {
				data = append(data, chars[rng.IntN(len(chars))])
			}
		}
		s := sizes[(n*7919)%len(sizes)]
		m, k := uint64(s[0]), s[1]
		got, want := locations(data, k), bloom.Locations(data, k)
		require.Len(t, got, len(want))
		for j := range got {
			if got[j] != want[j] || got[j]%m != want[j]%m {
				t.Fatalf("element %x, m %d, k %d: position %d is %d, want %d", data, m, k, j, got[j], want[j])
			}
		}
	}
}

// bloomOptions are the test options with the nonce store in Bloom mode.
func bloomOptions(nonceOpts map[string]any) map[string]any {
	o := pluginOptions()
	n := map[string]any{"mode": "bloom"}
	for k, v := range nonceOpts {
		n[k] = v
	}
	o["nonce"] = n
	return o
}

// codesOf serves reqs through h at once and counts the answers: "200" or
// "<status> <problem code>".
func codesOf(h http.Handler, reqs []*http.Request) map[string]int {
	codes := make([]string, len(reqs))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			rec := serve(h, r)
			codes[i] = strconv.Itoa(rec.Code)
			if rec.Code != http.StatusOK {
				var p replayguard.Problem
				_ = json.Unmarshal(rec.Body.Bytes(), &p)
				codes[i] += " " + p.Code
			}
		}()
	}
	close(start)
	wg.Wait()
	count := map[string]int{}
	for _, c := range codes {
		count[c]++
	}
	return count
}

// nonce.mode bloom with the memory store, under Yaegi: replays caught,
// concurrent copies passing once, every instance of a middleware sharing
// its filters and no two middlewares sharing theirs, and a bucket growing
// past its share logged where Traefik's default level shows it.
func TestPluginBloomUnderYaegi(t *testing.T) {
	plugin := loadPlugin(t, pluginGoPath(t))
	ctx := context.Background()
	logs := captureLogs(t)

	t.Run("a replay is refused, a fresh request passes", func(t *testing.T) {
		up := &upstream{}
		h, err := plugin.newHandler(ctx, up, bloomOptions(nil), "bloom@file")
		require.NoError(t, err)
		for i := 0; i < 20; i++ {
			req := sign(t, http.MethodGet, "/v1/ping", nil, time.Now())
			require.Equal(t, http.StatusOK, serve(h, req.request(nil)).Code)
			rec := serve(h, req.request(nil))
			assert.Equal(t, http.StatusUnauthorized, rec.Code)
			assert.Equal(t, "nonce_replayed", problemCode(t, rec))
		}
		assert.EqualValues(t, 20, up.hits.Load())
		assert.Empty(t, logs.take())
	})

	t.Run("200 concurrent copies: exactly one passes", func(t *testing.T) {
		up := &upstream{}
		h, err := plugin.newHandler(ctx, up, bloomOptions(nil), "bloom-race@file")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, serve(h, sign(t, http.MethodGet, "/v1/ping", nil, time.Now()).request(nil)).Code)
		req := sign(t, http.MethodGet, "/v1/ping", nil, time.Now())
		reqs := make([]*http.Request, 200)
		for i := range reqs {
			reqs[i] = req.request(nil)
		}
		assert.Equal(t, map[string]int{"200": 1, "401 nonce_replayed": 199}, codesOf(h, reqs))
		assert.EqualValues(t, 2, up.hits.Load())
	})

	t.Run("instances of one middleware share the filters, two middlewares never do", func(t *testing.T) {
		up := &upstream{}
		first, err := plugin.newHandler(ctx, up, bloomOptions(nil), "shared@file")
		require.NoError(t, err)
		reloaded, err := plugin.newHandler(ctx, up, bloomOptions(nil), "shared@file")
		require.NoError(t, err)
		other, err := plugin.newHandler(ctx, up, bloomOptions(nil), "other@file")
		require.NoError(t, err)
		req := sign(t, http.MethodGet, "/v1/ping", nil, time.Now())
		require.Equal(t, http.StatusOK, serve(first, req.request(nil)).Code)
		rec := serve(reloaded, req.request(nil))
		assert.Equal(t, "nonce_replayed", problemCode(t, rec))
		assert.Equal(t, http.StatusOK, serve(other, req.request(nil)).Code, "another middleware has its own filters")

		// A reload that resizes the filters builds new ones.
		resized, err := plugin.newHandler(ctx, up, bloomOptions(map[string]any{"capacity": "5000"}), "shared@file")
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, serve(resized, req.request(nil)).Code)
		assert.Empty(t, logs.take())
	})

	t.Run("a bucket growing past its share is logged at Traefik's default level", func(t *testing.T) {
		// 160 nonces per 6-minute window: one per partition and
		// one-minute bucket.
		h, err := plugin.newHandler(ctx, &upstream{}, bloomOptions(map[string]any{"capacity": "160"}), "small@file")
		require.NoError(t, err)
		for i := 0; i < 100; i++ {
			require.Equal(t, http.StatusOK, serve(h, sign(t, http.MethodGet, "/v1/ping", nil, time.Now()).request(nil)).Code)
		}
		var grew []string
		require.Eventually(t, func() bool {
			for _, l := range logs.take() {
				if strings.Contains(l, "nonce Bloom filter grew") {
					grew = append(grew, l)
				}
			}
			return len(grew) > 0
		}, 5*time.Second, 20*time.Millisecond)
		for _, l := range grew {
			assert.Contains(t, l, "level=WARN")
			assert.Contains(t, l, "middleware=small@file")
			assert.Contains(t, l, "subfilters=")
			assert.Contains(t, l, "capacity=160")
		}
	})

	t.Run("the local shield beside the memory store changes nothing", func(t *testing.T) {
		h, err := plugin.newHandler(ctx, &upstream{}, bloomOptions(map[string]any{"localShield": "true"}), "shielded@file")
		require.NoError(t, err)
		req := sign(t, http.MethodGet, "/v1/ping", nil, time.Now())
		require.Equal(t, http.StatusOK, serve(h, req.request(nil)).Code)
		assert.Equal(t, "nonce_replayed", problemCode(t, serve(h, req.request(nil))))
	})
}
