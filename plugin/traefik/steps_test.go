package traefik_test

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/traefik/yaegi/interp"
	"github.com/traefik/yaegi/stdlib"

	"github.com/replayguard/replayguard/plugin/traefik/internal/tree"
)

// stepsSource is added to the assembled plugin, for BenchmarkPluginSteps
// only: it times, in the interpreter, the steps of a signed GET through the
// plugin with memory stores, each on its own, through the packages'
// exported API.
const stepsSource = `package traefik

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"time"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/hmacsig"
	"github.com/replayguard/replayguard/timestamp"
)

type stepsNext struct{}

func (stepsNext) ServeHTTP(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }

// Steps runs each step n times and returns its mean nanoseconds and
// allocations, by name.
func Steps(n int, secret string) map[string][2]float64 {
	out := map[string][2]float64{}
	reqs := func() []*http.Request {
		rs := make([]*http.Request, n)
		for i := range rs {
			r := httptest.NewRequest(http.MethodGet, "http://api.example.com/v1/ping?i=1", nil)
			s := &hmacsig.Signer{KeyID: "client-a", Secret: []byte(secret)}
			if err := s.Sign(r, nil); err != nil {
				panic(err)
			}
			rs[i] = r
		}
		return rs
	}
	step := func(name string, f func(r *http.Request)) {
		rs := reqs()
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		start := time.Now()
		for _, r := range rs {
			f(r)
		}
		d := time.Since(start)
		runtime.ReadMemStats(&m1)
		out[name] = [2]float64{float64(d.Nanoseconds()) / float64(n), float64(m1.Mallocs-m0.Mallocs) / float64(n)}
	}
	ctx := context.Background()
	cfg := CreateConfig()
	cfg.Keys = []Key{{ID: "client-a", Secrets: []string{secret}}}
	plugin, err := New(ctx, stepsNext{}, cfg, "steps")
	if err != nil {
		panic(err)
	}
	model := replayguard.Config{Keys: []replayguard.KeyConfig{{ID: "client-a", Secrets: []string{secret}}}}
	g, err := replayguard.New(model)
	if err != nil {
		panic(err)
	}
	mw := g.Middleware(stepsNext{})
	scheme, err := hmacsig.New([]signature.Key{{ID: "client-a", Secrets: [][]byte{[]byte(secret)}}})
	if err != nil {
		panic(err)
	}
	w := timestamp.New(0, 0)
	store := nonce.NewMemory(model.WithDefaults().NonceMemoryOptions()...)

	step("0-empty-step", func(r *http.Request) {})
	step("1-whole-plugin", func(r *http.Request) { plugin.ServeHTTP(httptest.NewRecorder(), r) })
	step("2-Guard-middleware", func(r *http.Request) { mw.ServeHTTP(httptest.NewRecorder(), r) })
	step("3-response-recorder", func(r *http.Request) { _ = httptest.NewRecorder() })
	step("4-signature.FromHTTP", func(r *http.Request) { _ = signature.FromHTTP(r, nil) })
	step("5-hmac-Verify", func(r *http.Request) { _, _ = scheme.Verify(ctx, signature.FromHTTP(r, nil)) })
	step("6-timestamp-window", func(r *http.Request) {
		now := time.Now()
		_ = w.Check(now, now)
		_ = w.Expiry(now)
	})
	step("7-nonce-memory-Add", func(r *http.Request) {
		now := time.Now()
		_ = store.Add(ctx, nonce.Entry{Scope: "client-a", Key: r.Header.Get("X-Nonce"), Timestamp: now, Expires: now.Add(time.Minute), Owner: "client-a"})
	})
	step("8-identity-headers", func(r *http.Request) {
		replayguard.SetIdentityHeaders(r.Header, signature.Verified{KeyID: "client-a"})
	})
	return out
}
`

// BenchmarkPluginSteps times the steps of BenchmarkPlugin/yaegi's signed
// GET in the interpreter, each on its own, and reports each step's
// ns/op and allocs/op as metrics: where the interpreted time goes.
// "whole-plugin" is the request of BenchmarkPlugin/yaegi without the
// test's own request building; "Guard-middleware" the pipeline without the
// plugin's target check and identity step; the others the steps it runs,
// whose sum falls short of it by the pipeline's own work (a call from
// compiled code into interpreted code, the body read, the request copy).
func BenchmarkPluginSteps(b *testing.B) {
	gopath := pluginGoPath(b)
	dir := filepath.Join(gopath, "src", filepath.FromSlash(tree.Module))
	require.NoError(b, os.WriteFile(filepath.Join(dir, "zz_steps.go"), []byte(stepsSource), 0o644))
	i := interp.New(interp.Options{GoPath: gopath})
	require.NoError(b, i.Use(stdlib.Symbols))
	_, err := i.Eval(`import "` + tree.Module + `"`)
	require.NoError(b, err)
	v, err := i.Eval("traefik.Steps")
	require.NoError(b, err)
	steps, ok := v.Interface().(func(int, string) map[string][2]float64)
	require.True(b, ok)
	steps(100, secret) // every step run once before it is timed
	b.ResetTimer()
	res := steps(b.N, secret)
	b.StopTimer()
	names := make([]string, 0, len(res))
	for name := range res {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		b.ReportMetric(res[name][0], name+"-ns/op")
		b.ReportMetric(res[name][1], name+"-allocs/op")
	}
}
