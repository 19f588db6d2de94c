//go:build traefik

package traefik_test

// The plugin inside a real Traefik binary: `make traefik-e2e
// TRAEFIK=/path/to/traefik` (Traefik v3.3 or later). Not part of make
// test, which proves the plugin under the interpreter Traefik embeds.

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/redisstore/redistest"
	"github.com/replayguard/replayguard/signature/hmacsig"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

const realJWTSecret = "traefik-jwt-secret-0123456789abcdef"

func TestRealTraefik(t *testing.T) {
	bin := os.Getenv("TRAEFIK")
	require.NotEmpty(t, bin, "set TRAEFIK to a Traefik v3 binary")
	srv := redistest.Start(t)

	var mu sync.Mutex
	var last *http.Request
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		last = r
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Seen-Uri", r.RequestURI)
		_ = json.NewEncoder(w).Encode(r.Header)
	}))
	defer echo.Close()

	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.Symlink(pluginGoPath(t), filepath.Join(dir, "plugins-local")))
	web, semi := freePort(t), freePort(t)
	static := fmt.Sprintf(`
entryPoints:
  web: {address: "%s"}
  semi:
    address: "%s"
    http: {encodeQuerySemicolons: true}
experimental:
  localPlugins:
    replayguard: {moduleName: github.com/replayguard/replayguard/plugin/traefik}
providers:
  file: {filename: dynamic.yml}
`, web, semi)
	secretB64 := func(s string) string { return "base64:" + base64.StdEncoding.EncodeToString([]byte(s)) }
	dynamic := fmt.Sprintf(`
http:
  routers:
    a: {rule: "PathPrefix(`+"`/a/`"+`)", entryPoints: [web, semi], middlewares: [rg-a], service: echo}
    b: {rule: "PathPrefix(`+"`/b/`"+`)", entryPoints: [web], middlewares: [rg-b], service: echo}
    r: {rule: "PathPrefix(`+"`/r/`"+`)", entryPoints: [web], middlewares: [rg-redis], service: echo}
    j: {rule: "PathPrefix(`+"`/j/`"+`)", entryPoints: [web], middlewares: [rg-jwt], service: echo}
    e: {rule: "PathPrefix(`+"`/e/`"+`)", entryPoints: [web], middlewares: [rg-ed], service: echo}
    bl: {rule: "PathPrefix(`+"`/bl/`"+`)", entryPoints: [web], middlewares: [rg-bloom], service: echo}
    bm: {rule: "PathPrefix(`+"`/bm/`"+`)", entryPoints: [web], middlewares: [rg-bloom-small], service: echo}
  middlewares:
    rg-a:
      plugin:
        replayguard: {keys: [{id: %[2]s, secrets: ["%[3]s"]}]}
    rg-b:
      plugin:
        replayguard: {keys: [{id: %[2]s, secrets: ["%[3]s"]}]}
    rg-redis:
      plugin:
        replayguard:
          keys: [{id: %[2]s, secrets: ["%[3]s"]}]
          nonce: {store: redis}
          idempotency: {store: redis}
          redis: {addrs: ["%[4]s"], keyPrefix: rgtraefik}
    rg-bloom:
      plugin:
        replayguard:
          keys: [{id: %[2]s, secrets: ["%[3]s"]}]
          nonce: {store: redis, mode: bloom, capacity: 100000, falsePositiveRate: 1e-7, localShield: true}
          idempotency: {store: redis}
          redis: {addrs: ["%[4]s"], keyPrefix: rgbloom, timeout: 5s}
    rg-bloom-small:
      plugin:
        replayguard:
          keys: [{id: %[2]s, secrets: ["%[3]s"]}]
          nonce: {mode: bloom, capacity: 160}
    rg-jwt:
      plugin:
        replayguard:
          scheme: jwt
          jwt: {bind: []}
          keys: [{id: jwt-key, algorithm: HS256, secrets: ["%[5]s"]}]
    rg-ed:
      plugin:
        replayguard:
          scheme: jwt
          jwt: {bind: []}
          keys: [{id: ed-key, jwk: {kty: OKP, crv: Ed25519, x: "%[6]s"}}]
  services:
    echo:
      loadBalancer:
        servers: [{url: "%[1]s"}]
`, echo.URL, keyID, secretB64(secret), srv.Addr(), realJWTSecret, base64.RawURLEncoding.EncodeToString(edPub))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "traefik.yml"), []byte(static), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "dynamic.yml"), []byte(dynamic), 0o600))

	logs := &lockedBuffer{}
	cmd := exec.Command(bin, "--configFile=traefik.yml")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() || testing.Verbose() {
			t.Logf("traefik logs:\n%s", logs.String())
		}
	})

	do := func(t *testing.T, addr string, s signedRequest, mutate ...func(*http.Request)) *http.Response {
		t.Helper()
		r, err := http.NewRequest(s.method, "http://"+addr+s.target, nil)
		require.NoError(t, err)
		r.Host = "api.example.com"
		r.Header = s.header.Clone()
		for _, m := range mutate {
			m(r)
		}
		resp, err := http.DefaultClient.Do(r)
		require.NoError(t, err)
		t.Cleanup(func() { _ = resp.Body.Close() })
		return resp
	}
	code := func(t *testing.T, resp *http.Response) string {
		t.Helper()
		var p replayguard.Problem
		b, _ := io.ReadAll(resp.Body)
		require.NoError(t, json.Unmarshal(b, &p), string(b))
		return p.Code
	}
	require.Eventually(t, func() bool {
		r, err := http.NewRequest(http.MethodGet, "http://"+web+"/a/ping", nil)
		if err != nil {
			return false
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized
	}, 60*time.Second, 200*time.Millisecond, "traefik did not serve the plugin")

	t.Run("a lookalike of the gateway's header never reaches the service", func(t *testing.T) {
		resp := do(t, web, sign(t, http.MethodGet, "/a/ping", nil, time.Now()), func(r *http.Request) {
			r.Header["X_Replayguard_Key_Id"] = []string{"admin"}
			r.Header.Set("X-Replayguard-Subject", "root")
		})
		require.Equal(t, http.StatusOK, resp.StatusCode)
		mu.Lock()
		h := last.Header
		mu.Unlock()
		for name := range h {
			if replayguard.IsGatewayHeader(name) {
				assert.Equal(t, replayguard.HeaderKeyID, name)
			}
		}
		assert.Equal(t, []string{keyID}, h[replayguard.HeaderKeyID])
	})

	t.Run("two middlewares never share stores", func(t *testing.T) {
		a := sign(t, http.MethodGet, "/a/x", nil, time.Now())
		require.Equal(t, http.StatusOK, do(t, web, a).StatusCode)
		resp := do(t, web, a)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Equal(t, "nonce_replayed", code(t, resp))
		// The same nonce under the same key id, through the other
		// middleware: its own store has not seen it (the signature covers
		// the path, so sign /b/x with a's nonce).
		bs := signWithNonce(t, http.MethodGet, "/b/x", a.header.Get("X-Nonce"))
		require.Equal(t, http.StatusOK, do(t, web, bs).StatusCode)
	})

	t.Run("';' in a query: refused, unless the entry point encodes it", func(t *testing.T) {
		resp := do(t, web, sign(t, http.MethodGet, "/a/q?x=1;y=2", nil, time.Now()))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Equal(t, "target_unforwardable", code(t, resp))
		resp = do(t, semi, sign(t, http.MethodGet, "/a/q?x=1%3By=2", nil, time.Now()), func(r *http.Request) {
			r.URL.RawQuery = "x=1;y=2"
		})
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "/a/q?x=1%3By=2", resp.Header.Get("X-Seen-Uri"))
	})

	t.Run("jwt: the key is the identity, the sub its subject", func(t *testing.T) {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"jti": uuid.NewString(), "iat": time.Now().Unix(), "sub": "other-key"})
		tok.Header["kid"] = "jwt-key"
		raw, err := tok.SignedString([]byte(realJWTSecret))
		require.NoError(t, err)
		s := signedRequest{method: http.MethodGet, target: "/j/me", header: http.Header{"Authorization": {"Bearer " + raw}}}
		require.Equal(t, http.StatusOK, do(t, web, s).StatusCode)
		mu.Lock()
		h := last.Header
		mu.Unlock()
		assert.Equal(t, "jwt-key", h.Get(replayguard.HeaderKeyID))
		assert.Equal(t, "other-key", h.Get(replayguard.HeaderSubject))
	})

	t.Run("an Ed25519 key given as a JWK verifies in Traefik's interpreter", func(t *testing.T) {
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"jti": uuid.NewString(), "iat": time.Now().Unix()})
		tok.Header["kid"] = "ed-key"
		raw, err := tok.SignedString(edPriv)
		require.NoError(t, err)
		s := signedRequest{method: http.MethodGet, target: "/e/me", header: http.Header{"Authorization": {"Bearer " + raw}}}
		resp := do(t, web, s)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		mu.Lock()
		h := last.Header
		mu.Unlock()
		assert.Equal(t, "ed-key", h.Get(replayguard.HeaderKeyID))
		resp = do(t, web, s)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Equal(t, "nonce_replayed", code(t, resp))
	})

	t.Run("Bloom mode on Redis behind the local shield: a replay is refused, concurrent copies pass once", func(t *testing.T) {
		for i := 0; i < 10; i++ {
			s := sign(t, http.MethodGet, "/bl/x", nil, time.Now())
			require.Equal(t, http.StatusOK, do(t, web, s).StatusCode)
			resp := do(t, web, s)
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
			assert.Equal(t, "nonce_replayed", code(t, resp))
		}
		keys, err := srv.Do("KEYS", "rgbloom:b:*")
		require.NoError(t, err)
		assert.NotEmpty(t, keys, "the filters are Redis bitmaps")

		s := sign(t, http.MethodGet, "/bl/race", nil, time.Now())
		statuses := make([]int, 50)
		var wg sync.WaitGroup
		for i := range statuses {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := http.NewRequest(s.method, "http://"+web+s.target, nil)
				if err != nil {
					return
				}
				r.Host = "api.example.com"
				r.Header = s.header.Clone()
				resp, err := http.DefaultClient.Do(r)
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				statuses[i] = resp.StatusCode
			}()
		}
		wg.Wait()
		count := map[int]int{}
		for _, st := range statuses {
			count[st]++
		}
		assert.Equal(t, map[int]int{http.StatusOK: 1, http.StatusUnauthorized: 49}, count)
	})

	t.Run("a Bloom bucket growing past its share is logged at Traefik's default level", func(t *testing.T) {
		for i := 0; i < 60; i++ {
			require.Equal(t, http.StatusOK, do(t, web, sign(t, http.MethodGet, "/bm/x", nil, time.Now())).StatusCode)
		}
		require.Eventually(t, func() bool {
			return strings.Contains(logs.String(), "nonce Bloom filter grew")
		}, 5*time.Second, 100*time.Millisecond)
	})

	t.Run("a store failure is logged at Traefik's default level", func(t *testing.T) {
		require.Equal(t, http.StatusOK, do(t, web, sign(t, http.MethodGet, "/r/x", nil, time.Now())).StatusCode)
		srv.Kill()
		resp := do(t, web, sign(t, http.MethodGet, "/r/x", nil, time.Now()))
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		require.Eventually(t, func() bool {
			sc := bufio.NewScanner(strings.NewReader(logs.String()))
			for sc.Scan() {
				if l := sc.Text(); strings.Contains(l, "store failed") && strings.Contains(strings.ToLower(l), "err") {
					return true
				}
			}
			return false
		}, 5*time.Second, 100*time.Millisecond)
		srv.Restart()
	})
}

// signWithNonce signs a GET for target with a chosen nonce.
func signWithNonce(t *testing.T, method, target, nonceVal string) signedRequest {
	t.Helper()
	r := httptest.NewRequest(method, "http://api.example.com"+target, nil)
	s := &hmacsig.Signer{KeyID: keyID, Secret: []byte(secret), NewNonce: func() string { return nonceVal }}
	require.NoError(t, s.Sign(r, nil))
	return signedRequest{method: method, target: target, header: r.Header}
}
