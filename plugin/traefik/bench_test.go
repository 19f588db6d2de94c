package traefik_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	traefik "github.com/replayguard/replayguard/plugin/traefik"
)

// BenchmarkPlugin measures a signed GET through the plugin with memory
// stores, compiled and under Yaegi as Traefik runs it: what the
// interpreter costs per request.
func BenchmarkPlugin(b *testing.B) {
	gopath := pluginGoPath(b)
	newReqs := func(n int) []signedRequest {
		reqs := make([]signedRequest, n)
		for i := range reqs {
			reqs[i] = sign(b, http.MethodGet, "/v1/ping?i=1", nil, time.Now())
		}
		return reqs
	}
	run := func(b *testing.B, h http.Handler) {
		reqs := newReqs(b.N)
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
	b.Run("compiled", func(b *testing.B) {
		cfg := traefik.CreateConfig()
		cfg.Keys = []traefik.Key{{ID: keyID, Secrets: []string{secret}}}
		h, err := traefik.New(context.Background(), &upstream{}, cfg, "bench")
		require.NoError(b, err)
		run(b, h)
	})
	b.Run("yaegi", func(b *testing.B) {
		plugin := loadPlugin(b, gopath)
		h, err := plugin.newHandler(context.Background(), &upstream{}, pluginOptions(), "bench")
		require.NoError(b, err)
		run(b, h)
	})
}
