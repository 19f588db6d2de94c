package traefik_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	traefik "github.com/replayguard/replayguard/plugin/traefik"
	"github.com/replayguard/replayguard/redisstore/redistest"
)

// benchRequests signs n requests: GETs, or POSTs each with a fresh
// Idempotency-Key.
func benchRequests(b *testing.B, method string, n int) []signedRequest {
	reqs := make([]signedRequest, n)
	for i := range reqs {
		reqs[i] = sign(b, method, "/v1/ping?i=1", nil, time.Now())
	}
	return reqs
}

// runBench serves b.N signed requests through h, each answered 200.
func runBench(b *testing.B, method string, h http.Handler) {
	reqs := benchRequests(b, method, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, reqs[i].request(nil))
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body.String())
		}
	}
}

// compiledHandler builds the plugin compiled, with options set on top of
// the test key.
func compiledHandler(b *testing.B, name string, set func(*traefik.Config)) http.Handler {
	cfg := traefik.CreateConfig()
	cfg.Keys = []traefik.Key{{ID: keyID, Secrets: []string{secret}}}
	if set != nil {
		set(cfg)
	}
	h, err := traefik.New(context.Background(), &upstream{}, cfg, name)
	require.NoError(b, err)
	return h
}

// BenchmarkPlugin measures a request through the plugin with memory
// stores, compiled and under Yaegi as Traefik runs it, one after the other
// in the same run: what the interpreter costs per request. compiled and
// yaegi are a signed GET (the nonce alone), POST/compiled and POST/yaegi a
// signed POST with a fresh Idempotency-Key (the nonce, then the dedupe
// step recording the response); floor is the test's own work per request
// (building the request and the recorder, the upstream).
func BenchmarkPlugin(b *testing.B) {
	gopath := pluginGoPath(b)
	// The floor: the same requests straight to the upstream, what the
	// other figures hold besides the plugin.
	b.Run("floor", func(b *testing.B) {
		runBench(b, http.MethodGet, &upstream{})
	})
	b.Run("compiled", func(b *testing.B) {
		runBench(b, http.MethodGet, compiledHandler(b, "bench", nil))
	})
	b.Run("yaegi", func(b *testing.B) {
		h, err := loadPlugin(b, gopath).newHandler(context.Background(), &upstream{}, pluginOptions(), "bench")
		require.NoError(b, err)
		runBench(b, http.MethodGet, h)
	})
	b.Run("POST/compiled", func(b *testing.B) {
		runBench(b, http.MethodPost, compiledHandler(b, "bench-post", nil))
	})
	b.Run("POST/yaegi", func(b *testing.B) {
		h, err := loadPlugin(b, gopath).newHandler(context.Background(), &upstream{}, pluginOptions(), "bench-post")
		require.NoError(b, err)
		runBench(b, http.MethodPost, h)
	})
}

// BenchmarkPluginRedis is BenchmarkPlugin's GET with the nonce on a local
// redis-server: exact, and Bloom. For information: the round trip to Redis
// is in both the compiled and the interpreted figures.
func BenchmarkPluginRedis(b *testing.B) {
	srv := redistest.Start(b)
	gopath := pluginGoPath(b)
	for _, mode := range []string{"exact", "bloom"} {
		b.Run(mode+"/compiled", func(b *testing.B) {
			runBench(b, http.MethodGet, compiledHandler(b, "bench-redis-"+mode, func(c *traefik.Config) {
				c.Nonce = traefik.Nonce{Store: "redis", Mode: mode}
				c.Redis = traefik.Redis{Addrs: []string{srv.Addr()}, KeyPrefix: "bc" + mode}
			}))
		})
		b.Run(mode+"/yaegi", func(b *testing.B) {
			o := pluginOptions()
			o["nonce"] = map[string]any{"store": "redis", "mode": mode}
			o["redis"] = map[string]any{"addrs": []any{srv.Addr()}, "keyPrefix": "by" + mode}
			h, err := loadPlugin(b, gopath).newHandler(context.Background(), &upstream{}, o, "bench-redis-"+mode)
			require.NoError(b, err)
			runBench(b, http.MethodGet, h)
		})
	}
}

// BenchmarkPluginPaired serves each signed request of BenchmarkPlugin
// through the compiled plugin and then through the interpreted one, timing
// each, and reports both per request and their ratio (yaegi/compiled):
// load from other processes falls on both alike, where separate runs of
// BenchmarkPlugin's sub-benchmarks drift apart on a busy machine.
func BenchmarkPluginPaired(b *testing.B) {
	gopath := pluginGoPath(b)
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		b.Run(method, func(b *testing.B) {
			compiled := compiledHandler(b, "paired-"+method, nil)
			interpreted, err := loadPlugin(b, gopath).newHandler(context.Background(), &upstream{}, pluginOptions(), "paired-"+method)
			require.NoError(b, err)
			reqs := benchRequests(b, method, 2*b.N)
			var tc, ty time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j, h := range []http.Handler{compiled, interpreted} {
					r := reqs[2*i+j].request(nil)
					rec := httptest.NewRecorder()
					start := time.Now()
					h.ServeHTTP(rec, r)
					d := time.Since(start)
					if rec.Code != http.StatusOK {
						b.Fatalf("status %d: %s", rec.Code, rec.Body.String())
					}
					if j == 0 {
						tc += d
					} else {
						ty += d
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(tc.Nanoseconds())/float64(b.N), "compiled-ns/op")
			b.ReportMetric(float64(ty.Nanoseconds())/float64(b.N), "yaegi-ns/op")
			b.ReportMetric(float64(ty)/float64(tc), "yaegi/compiled")
		})
	}
}
