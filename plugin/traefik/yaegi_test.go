package traefik_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/mitchellh/mapstructure"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/traefik/yaegi/interp"
	"github.com/traefik/yaegi/stdlib"
	"go.yaml.in/yaml/v3"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/plugin/traefik/internal/tree"
	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/hmacsig"
	"github.com/replayguard/replayguard/signature/httpsig"
	"github.com/replayguard/replayguard/signature/jwtsig"
	"github.com/replayguard/replayguard/signature/webhooksig"
)

const (
	// coreModule is the module whose packages the plugin vendors.
	coreModule = "github.com/replayguard/replayguard"

	verifiedKeyHeader = "X-Replayguard-Key-Id"
)

// corePackages are among the packages vendored into the plugin; every
// vendored package has to load under Yaegi.
var corePackages = []string{
	coreModule,
	coreModule + "/bloom/bloomcore",
	coreModule + "/confval",
	coreModule + "/idempotency",
	coreModule + "/internal/hop",
	coreModule + "/nonce",
	coreModule + "/redisstore",
	coreModule + "/redisstore/layout",
	coreModule + "/redisstore/resp",
	coreModule + "/signature",
	coreModule + "/signature/internal/sfv",
	coreModule + "/signature/internal/sigutil",
	coreModule + "/signature/hmacsig",
	coreModule + "/signature/httpsig",
	coreModule + "/signature/jwks",
	coreModule + "/signature/jwtsig",
	coreModule + "/signature/webhooksig",
	coreModule + "/timestamp",
}

// pluginGoPath assembles the plugin's local-plugin tree, as make
// traefik-plugin does, in a temporary directory that serves as Traefik's
// plugins-local (the interpreter's GOPATH).
func pluginGoPath(t testing.TB) string {
	t.Helper()
	gopath := t.TempDir()
	dir, err := tree.Assemble(gopath)
	require.NoError(t, err)
	for _, f := range []string{tree.Manifest, "go.mod", "plugin.go", filepath.Join("vendor", "modules.txt")} {
		require.FileExists(t, filepath.Join(dir, f))
	}
	for _, p := range corePackages {
		require.DirExists(t, filepath.Join(dir, "vendor", filepath.FromSlash(p)), "%s is not vendored", p)
	}
	return gopath
}

// yaegiPlugin holds New and CreateConfig of a plugin loaded the way
// Traefik's Yaegi middleware builder loads one.
type yaegiPlugin struct {
	fnNew          reflect.Value
	fnCreateConfig reflect.Value
}

// manifest is the part of .traefik.yml Traefik checks before loading.
type manifest struct {
	DisplayName string         `yaml:"displayName"`
	Type        string         `yaml:"type"`
	Import      string         `yaml:"import"`
	Summary     string         `yaml:"summary"`
	TestData    map[string]any `yaml:"testData"`
}

func readManifest(t testing.TB, gopath string) manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(gopath, "src", filepath.FromSlash(tree.Module), tree.Manifest))
	require.NoError(t, err)
	var m manifest
	require.NoError(t, yaml.Unmarshal(b, &m))
	return m
}

// loadPlugin loads the plugin the way Traefik's Yaegi middleware builder
// does: the manifest's import evaluated in an interpreter whose GOPATH is
// the plugins-local directory, with the standard library's symbols and
// nothing else (no unsafe, no syscall beyond the standard symbols).
func loadPlugin(t testing.TB, gopath string) *yaegiPlugin {
	t.Helper()
	m := readManifest(t, gopath)
	require.Equal(t, "middleware", m.Type)
	require.NotEmpty(t, m.DisplayName)
	require.NotEmpty(t, m.Summary)
	require.NotEmpty(t, m.TestData, "Traefik requires testData for a middleware")
	pluginImport := m.Import
	require.Equal(t, tree.Module, pluginImport)
	// As Traefik does: the plugin's os.Stdout is logged at DEBUG, its
	// os.Stderr at ERROR.
	i := interp.New(interp.Options{GoPath: gopath, Env: os.Environ(), Stdout: pluginLogs.debug(), Stderr: pluginLogs})
	require.NoError(t, i.Use(stdlib.Symbols))
	_, err := i.Eval(fmt.Sprintf("import %q", pluginImport))
	require.NoError(t, err, "Yaegi failed to import the plugin %q", pluginImport)

	basePkg := strings.ReplaceAll(path.Base(pluginImport), "-", "_")
	fnNew, err := i.Eval(basePkg + ".New")
	require.NoError(t, err, "eval New")
	fnCreateConfig, err := i.Eval(basePkg + ".CreateConfig")
	require.NoError(t, err, "eval CreateConfig")
	return &yaegiPlugin{fnNew: fnNew, fnCreateConfig: fnCreateConfig}
}

// createConfig decodes options into CreateConfig's result as Traefik does.
func (p *yaegiPlugin) createConfig(options map[string]any) (reflect.Value, error) {
	results := p.fnCreateConfig.Call(nil)
	if len(results) != 1 {
		return reflect.Value{}, fmt.Errorf("CreateConfig returned %d values", len(results))
	}
	vConfig := results[0]
	if len(options) == 0 {
		return vConfig, nil
	}
	decoder, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook:       mapstructure.StringToSliceHookFunc(","),
		WeaklyTypedInput: true,
		Result:           vConfig.Interface(),
	})
	if err != nil {
		return reflect.Value{}, err
	}
	if err := decoder.Decode(options); err != nil {
		return reflect.Value{}, err
	}
	return vConfig, nil
}

// newHandler calls New as Traefik does.
func (p *yaegiPlugin) newHandler(ctx context.Context, next http.Handler, options map[string]any, name string) (http.Handler, error) {
	cfg, err := p.createConfig(options)
	if err != nil {
		return nil, err
	}
	results := p.fnNew.Call([]reflect.Value{reflect.ValueOf(ctx), reflect.ValueOf(next), cfg, reflect.ValueOf(name)})
	if len(results) > 1 && results[1].Interface() != nil {
		err, ok := results[1].Interface().(error)
		if !ok {
			return nil, fmt.Errorf("invalid error type: %T", results[1].Interface())
		}
		return nil, err
	}
	h, ok := results[0].Interface().(http.Handler)
	if !ok {
		return nil, fmt.Errorf("invalid handler type: %T", results[0].Interface())
	}
	return h, nil
}

// logCapture keeps what the interpreted plugin writes to its os.Stderr,
// the stream Traefik logs at ERROR and shows at its default level: the
// plugin's warnings and errors. A store step that misbehaves under the
// interpreter while the response still goes out shows up here.
type logCapture struct {
	mu      sync.Mutex
	partial []byte
	records []string
	debugs  []string
}

// pluginLogs receives the streams of every interpreter loadPlugin builds.
var pluginLogs = &logCapture{}

// captureLogs forgets what was logged so far and returns the capture.
func captureLogs(t *testing.T) *logCapture {
	t.Helper()
	pluginLogs.take()
	pluginLogs.takeDebug()
	return pluginLogs
}

func (c *logCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.records = appendLines(c.records, &c.partial, p)
	return len(p), nil
}

// debug is the plugin's os.Stdout.
func (c *logCapture) debug() io.Writer { return debugWriter{c} }

type debugWriter struct{ c *logCapture }

func (d debugWriter) Write(p []byte) (int, error) {
	d.c.mu.Lock()
	defer d.c.mu.Unlock()
	var partial []byte
	d.c.debugs = appendLines(d.c.debugs, &partial, p)
	return len(p), nil
}

func appendLines(lines []string, partial *[]byte, p []byte) []string {
	*partial = append(*partial, p...)
	for {
		i := bytes.IndexByte(*partial, '\n')
		if i < 0 {
			return lines
		}
		lines = append(lines, string((*partial)[:i]))
		*partial = (*partial)[i+1:]
	}
}

// take returns and forgets the error-stream lines so far.
func (c *logCapture) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.records
	c.records = nil
	return r
}

// takeDebug returns and forgets the debug-stream lines so far.
func (c *logCapture) takeDebug() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.debugs
	c.debugs = nil
	return r
}

// upstream records what reaches the next handler.
type upstream struct {
	// chunked answers without a Content-Length, as a proxied stream would.
	chunked bool

	hits atomic.Int64
	mu   sync.Mutex
	body []byte
	key  string
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	u.hits.Add(1)
	u.mu.Lock()
	u.body, u.key = b, r.Header.Get(verifiedKeyHeader)
	u.mu.Unlock()
	if !u.chunked {
		// What Traefik's proxy passes on from an upstream that sent it.
		w.Header().Set("Content-Length", "8")
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("upstream"))
}

const (
	keyID  = "client-a"
	secret = "0123456789abcdef0123456789abcdef"
)

// pluginOptions are options as Traefik hands them to the plugin: nested
// maps and slices from the dynamic configuration, numbers as strings.
func pluginOptions() map[string]any {
	return map[string]any{
		"keys": []any{map[string]any{
			"id":      keyID,
			"secrets": []any{"base64:" + base64.StdEncoding.EncodeToString([]byte(secret))},
		}},
		"timestamp":    map[string]any{"tolerance": "5m", "futureSkew": "1m"},
		"maxBodyBytes": "1024",
	}
}

type signedRequest struct {
	method, target string
	header         http.Header
}

// sign signs a request; a POST gets a fresh Idempotency-Key.
func sign(t testing.TB, method, target string, body []byte, at time.Time) signedRequest {
	t.Helper()
	key := ""
	if method == http.MethodPost {
		key = uuid.NewString()
	}
	return signWithKey(t, method, target, body, at, key)
}

// signWithKey signs a request carrying the Idempotency-Key key, if not empty.
func signWithKey(t testing.TB, method, target string, body []byte, at time.Time, key string) signedRequest {
	t.Helper()
	r := httptest.NewRequest(method, "http://api.example.com"+target, bytes.NewReader(body))
	if key != "" {
		r.Header.Set(signature.IdempotencyKeyHeader, key)
	}
	s := &hmacsig.Signer{KeyID: keyID, Secret: []byte(secret), Now: func() time.Time { return at }}
	require.NoError(t, s.Sign(r, body))
	return signedRequest{method: method, target: target, header: r.Header}
}

// request builds a fresh server request carrying the signed headers and body.
func (s signedRequest) request(body []byte) *http.Request {
	r := httptest.NewRequest(s.method, "http://api.example.com"+s.target, bytes.NewReader(body))
	r.Header = s.header.Clone()
	return r
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func problemCode(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	assert.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
	var p replayguard.Problem
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p), rec.Body.String())
	assert.Equal(t, rec.Code, p.Status)
	assert.Equal(t, replayguard.ProblemType+p.Code, p.Type)
	return p.Code
}

func TestPluginUnderYaegi(t *testing.T) {
	gopath := pluginGoPath(t)
	plugin := loadPlugin(t, gopath)
	ctx := context.Background()
	logs := captureLogs(t)

	newHandler := func(t *testing.T) (http.Handler, *upstream) {
		t.Helper()
		up := &upstream{}
		h, err := plugin.newHandler(ctx, up, pluginOptions(), "replayguard@file")
		require.NoError(t, err)
		return h, up
	}

	t.Run("signed request passes, replay and tampering are rejected", func(t *testing.T) {
		h, up := newHandler(t)
		body := []byte(`{"amount":100}`)
		req := sign(t, http.MethodPost, "/v1/charges?currency=eur", body, time.Now())

		rec := serve(h, req.request(body))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		assert.Equal(t, "upstream", rec.Body.String())
		assert.EqualValues(t, 1, up.hits.Load())
		assert.Equal(t, body, up.body, "upstream receives the full body")
		assert.Equal(t, keyID, up.key, "the verified key id reaches the next handler")

		rec = serve(h, req.request(body))
		assert.Equal(t, http.StatusUnauthorized, rec.Code)
		assert.Equal(t, "nonce_replayed", problemCode(t, rec))

		tampered := sign(t, http.MethodPost, "/v1/charges?currency=eur", body, time.Now())
		rec = serve(h, tampered.request([]byte(`{"amount":999}`)))
		assert.Equal(t, http.StatusUnauthorized, rec.Code)
		assert.Equal(t, "signature_invalid", problemCode(t, rec))

		assert.EqualValues(t, 1, up.hits.Load(), "no rejected request reaches the upstream")
		assert.Empty(t, logs.take())
	})

	t.Run("idempotent retry gets the stored response", func(t *testing.T) {
		h, up := newHandler(t)
		body := []byte(`{"amount":100}`)
		key := uuid.NewString()

		rec := serve(h, signWithKey(t, http.MethodPost, "/v1/charges", body, time.Now(), key).request(body))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		assert.Empty(t, rec.Header().Get(idempotency.ReplayedHeader))

		rec = serve(h, signWithKey(t, http.MethodPost, "/v1/charges", body, time.Now(), key).request(body))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		assert.Equal(t, "upstream", rec.Body.String())
		assert.Equal(t, "true", rec.Header().Get(idempotency.ReplayedHeader))
		assert.EqualValues(t, 1, up.hits.Load(), "the retry does not reach the upstream")

		other := []byte(`{"amount":5}`)
		rec = serve(h, signWithKey(t, http.MethodPost, "/v1/charges", other, time.Now(), key).request(other))
		assert.Equal(t, http.StatusUnprocessableEntity, rec.Code)
		assert.Equal(t, "idempotency_key_reused", problemCode(t, rec))

		rec = serve(h, signWithKey(t, http.MethodPost, "/v1/charges", body, time.Now(), "").request(body))
		assert.Equal(t, http.StatusBadRequest, rec.Code)
		assert.Equal(t, "idempotency_key_missing", problemCode(t, rec))

		assert.EqualValues(t, 1, up.hits.Load())
		assert.Empty(t, logs.take())
	})

	t.Run("rejections", func(t *testing.T) {
		h, up := newHandler(t)
		now := time.Now()
		tests := []struct {
			name   string
			req    func() *http.Request
			status int
			code   string
		}{
			{"unsigned", func() *http.Request {
				return httptest.NewRequest(http.MethodGet, "http://api.example.com/v1/ping", nil)
			}, http.StatusUnauthorized, "signature_missing"},
			{"unknown key", func() *http.Request {
				r := sign(t, http.MethodGet, "/v1/ping", nil, now).request(nil)
				r.Header.Set(hmacsig.DefaultKeyIDHeader, "someone-else")
				return r
			}, http.StatusUnauthorized, "key_unknown"},
			{"expired", func() *http.Request {
				return sign(t, http.MethodGet, "/v1/ping", nil, now.Add(-10*time.Minute)).request(nil)
			}, http.StatusUnauthorized, "timestamp_expired"},
			{"in the future", func() *http.Request {
				return sign(t, http.MethodGet, "/v1/ping", nil, now.Add(10*time.Minute)).request(nil)
			}, http.StatusUnauthorized, "timestamp_in_future"},
			{"malformed nonce", func() *http.Request {
				r := sign(t, http.MethodGet, "/v1/ping", nil, now).request(nil)
				r.Header.Set(hmacsig.DefaultNonceHeader, "short")
				return r
			}, http.StatusUnauthorized, "nonce_malformed"},
			{"body over the limit", func() *http.Request {
				body := bytes.Repeat([]byte("x"), 2048)
				return sign(t, http.MethodPost, "/v1/upload", body, now).request(body)
			}, http.StatusRequestEntityTooLarge, "body_too_large"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				rec := serve(h, tt.req())
				assert.Equal(t, tt.status, rec.Code, rec.Body.String())
				assert.Equal(t, tt.code, problemCode(t, rec))
			})
		}
		assert.Zero(t, up.hits.Load())
		assert.Empty(t, logs.take())
	})

	t.Run("concurrent requests: a replayed one passes once, distinct ones all pass", func(t *testing.T) {
		h, up := newHandler(t)
		body := []byte(`{"concurrent":true}`)
		replayedReq := sign(t, http.MethodPost, "/v1/charges", body, time.Now())
		const replays, distinct = 32, 64
		reqs := make([]*http.Request, 0, replays+distinct)
		for i := 0; i < replays; i++ {
			reqs = append(reqs, replayedReq.request(body))
		}
		for i := 0; i < distinct; i++ {
			reqs = append(reqs, sign(t, http.MethodPost, "/v1/charges", body, time.Now()).request(body))
		}

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
		for _, c := range codes[:replays] {
			count[c]++
		}
		assert.Equal(t, map[string]int{"200": 1, "401 nonce_replayed": replays - 1}, count)
		for i, c := range codes[replays:] {
			assert.Equal(t, "200", c, "distinct request %d", i)
		}
		assert.EqualValues(t, 1+distinct, up.hits.Load())
		assert.Empty(t, logs.take())
	})

	t.Run("instances of one middleware share their stores: a replay through another router or after a reload is caught", func(t *testing.T) {
		up := &upstream{}
		first, err := plugin.newHandler(ctx, up, pluginOptions(), "first@file")
		require.NoError(t, err)
		// A reload of the same middleware that changes the window and the
		// idempotency store still shares the memory nonce store.
		opts := pluginOptions()
		opts["timestamp"] = map[string]any{"tolerance": "10m", "futureSkew": "1m"}
		opts["idempotency"] = map[string]any{"store": "redis"}
		opts["redis"] = map[string]any{"addrs": []any{"127.0.0.1:1"}}
		reloaded, err := plugin.newHandler(ctx, up, opts, "first@file")
		require.NoError(t, err)
		third, err := plugin.newHandler(ctx, up, pluginOptions(), "first@file")
		require.NoError(t, err)

		req := sign(t, http.MethodGet, "/v1/ping", nil, time.Now())
		rec := serve(first, req.request(nil))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		for _, h := range []http.Handler{reloaded, third} {
			rec = serve(h, req.request(nil))
			assert.Equal(t, http.StatusUnauthorized, rec.Code)
			assert.Equal(t, "nonce_replayed", problemCode(t, rec))
		}

		body := []byte(`{"amount":1}`)
		key := uuid.NewString()
		rec = serve(first, signWithKey(t, http.MethodPost, "/v1/charges", body, time.Now(), key).request(body))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		rec = serve(third, signWithKey(t, http.MethodPost, "/v1/charges", body, time.Now(), key).request(body))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		assert.Equal(t, "true", rec.Header().Get(idempotency.ReplayedHeader), "the record written through the first instance answers the reloaded one")
		assert.EqualValues(t, 2, up.hits.Load())
		assert.Empty(t, logs.take())
	})

	t.Run("two middlewares never share a store, even with the same key id", func(t *testing.T) {
		up := &upstream{}
		a, err := plugin.newHandler(ctx, up, pluginOptions(), "tenant-a@file")
		require.NoError(t, err)
		opts := pluginOptions()
		opts["keys"] = []any{map[string]any{"id": keyID, "secrets": []any{"base64:" + base64.StdEncoding.EncodeToString([]byte(secret))}}}
		b, err := plugin.newHandler(ctx, up, opts, "tenant-b@file")
		require.NoError(t, err)

		// One tenant's stored response is not the other's, though the key
		// id and the Idempotency-Key are the same.
		body := []byte(`{"amount":1}`)
		key := uuid.NewString()
		rec := serve(a, signWithKey(t, http.MethodPost, "/v1/charges", body, time.Now(), key).request(body))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		rec = serve(b, signWithKey(t, http.MethodPost, "/v1/charges", body, time.Now(), key).request(body))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		assert.Empty(t, rec.Header().Get(idempotency.ReplayedHeader))
		assert.EqualValues(t, 2, up.hits.Load())

		// Nor its nonces: the same signed request is new to the other.
		req := sign(t, http.MethodGet, "/v1/ping", nil, time.Now())
		require.Equal(t, http.StatusOK, serve(a, req.request(nil)).Code)
		require.Equal(t, http.StatusOK, serve(b, req.request(nil)).Code)
		assert.Empty(t, logs.take())
	})

	t.Run("no header that reads as the gateway's reaches the service", func(t *testing.T) {
		var seen http.Header
		next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.Header.Clone() })
		h, err := plugin.newHandler(ctx, next, pluginOptions(), "headers@file")
		require.NoError(t, err)
		r := sign(t, http.MethodGet, "/v1/ping", nil, time.Now()).request(nil)
		r.Header["X_Replayguard_Key_Id"] = []string{"admin"}
		r.Header["X-Replayguard-Subject"] = []string{"root"}
		r.Header["x_replayguard_role"] = []string{"admin"}
		r.Trailer = http.Header{"X-Replayguard-Key-Id": {"admin"}}
		rec := serve(h, r)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		for name := range seen {
			if replayguard.IsGatewayHeader(name) {
				assert.Equal(t, replayguard.HeaderKeyID, name)
			}
		}
		assert.Equal(t, []string{keyID}, seen[replayguard.HeaderKeyID])
		assert.Nil(t, r.Trailer)
	})

	t.Run("a target Traefik would not forward as verified is refused", func(t *testing.T) {
		h, up := newHandler(t)
		for _, target := range []string{"/v1/ping?a=1;b=2", "/v1/ping?a=%zz;b"} {
			req := sign(t, http.MethodGet, target, nil, time.Now())
			r := req.request(nil)
			r.RequestURI = target
			rec := serve(h, r)
			assert.Equal(t, http.StatusBadRequest, rec.Code, target)
			assert.Equal(t, "target_unforwardable", problemCode(t, rec))
		}
		assert.Zero(t, up.hits.Load())
		// Escapes and queries Traefik keeps pass.
		for _, target := range []string{"/v1/ping?a=%zz&b=%41", "/v1/p%7e?q=%3B", "/v1/ping?"} {
			req := sign(t, http.MethodGet, target, nil, time.Now())
			r := req.request(nil)
			r.RequestURI = target
			rec := serve(h, r)
			assert.Equal(t, http.StatusOK, rec.Code, target+" "+rec.Body.String())
		}
	})

	t.Run("a response without Content-Length streams through unrecorded", func(t *testing.T) {
		up := &upstream{chunked: true}
		h, err := plugin.newHandler(ctx, up, pluginOptions(), "stream@file")
		require.NoError(t, err)
		body := []byte(`{"stream":true}`)
		key := uuid.NewString()
		for i := 0; i < 2; i++ {
			rec := serve(h, signWithKey(t, http.MethodPost, "/v1/events", body, time.Now(), key).request(body))
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			assert.Equal(t, "upstream", rec.Body.String())
			assert.Empty(t, rec.Header().Get(idempotency.ReplayedHeader))
		}
		assert.EqualValues(t, 2, up.hits.Load(), "nothing was stored, so the retry runs again")
		assert.Empty(t, logs.take())
	})

	t.Run("a client cannot claim a verified key id", func(t *testing.T) {
		h, up := newHandler(t)
		r := sign(t, http.MethodGet, "/v1/ping", nil, time.Now()).request(nil)
		r.Header.Set(verifiedKeyHeader, "admin")
		rec := serve(h, r)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		assert.Equal(t, keyID, up.key)

		r = httptest.NewRequest(http.MethodGet, "http://api.example.com/v1/ping", nil)
		r.Header.Set(verifiedKeyHeader, "admin")
		rec = serve(h, r)
		assert.Equal(t, "signature_missing", problemCode(t, rec))
		assert.EqualValues(t, 1, up.hits.Load())
	})

	t.Run("the manifest's testData builds the middleware", func(t *testing.T) {
		_, err := plugin.newHandler(ctx, &upstream{}, readManifest(t, gopath).TestData, "testdata@file")
		require.NoError(t, err)
	})

	t.Run("configuration errors name the plugin's options", func(t *testing.T) {
		tests := []struct {
			name string
			set  func(map[string]any)
			want []string
		}{
			{"bad duration", func(o map[string]any) {
				o["timestamp"] = map[string]any{"futureSkew": "soon"}
			}, []string{"timestamp.futureSkew"}},
			{"model validation", func(o map[string]any) {
				o["idempotency"] = map[string]any{"maxResponseBytes": "-1", "deriveKey": "always"}
			}, []string{"idempotency.maxResponseBytes", "idempotency.deriveKey"}},
			{"unknown nonce mode", func(o map[string]any) {
				o["nonce"] = map[string]any{"mode": "cuckoo"}
			}, []string{"nonce.mode", "exact", "bloom"}},
			{"Bloom rate out of range", func(o map[string]any) {
				o["nonce"] = map[string]any{"mode": "bloom", "falsePositiveRate": "1.5"}
			}, []string{"nonce.falsePositiveRate"}},
			{"Bloom store too large", func(o map[string]any) {
				o["nonce"] = map[string]any{"mode": "bloom", "capacity": "1000000000000"}
			}, []string{"nonce", "capacity"}},
			{"Bloom growth out of range", func(o map[string]any) {
				o["nonce"] = map[string]any{"mode": "bloom", "maxSubfilters": "25"}
			}, []string{"nonce.maxSubfilters"}},
			{"Sentinel without addresses", func(o map[string]any) {
				o["nonce"] = map[string]any{"store": "redis"}
				o["redis"] = map[string]any{"masterName": "mymaster"}
			}, []string{"redis.addrs"}},
			{"postgres", func(o map[string]any) {
				o["idempotency"] = map[string]any{"store": "postgres"}
			}, []string{"idempotency.store"}},
			{"disk", func(o map[string]any) {
				o["nonce"] = map[string]any{"store": "disk"}
				o["idempotency"] = map[string]any{"store": "disk"}
			}, []string{"nonce.store", "idempotency.store", "embedded database", "redis"}},
			{"redis without addresses", func(o map[string]any) {
				o["nonce"] = map[string]any{"store": "redis"}
			}, []string{"redis.addrs"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				opts := pluginOptions()
				tt.set(opts)
				h, err := plugin.newHandler(ctx, &upstream{}, opts, "bad@file")
				require.Error(t, err)
				assert.Nil(t, h)
				for _, w := range tt.want {
					assert.Contains(t, err.Error(), w)
				}
			})
		}
	})

	t.Run("the example configurations build the middleware", func(t *testing.T) {
		const dir = "../../examples/traefik/plugin"
		var static struct {
			Experimental struct {
				LocalPlugins map[string]struct {
					ModuleName string `yaml:"moduleName"`
				} `yaml:"localPlugins"`
			} `yaml:"experimental"`
		}
		b, err := os.ReadFile(filepath.Join(dir, "traefik.yml"))
		require.NoError(t, err)
		require.NoError(t, yaml.Unmarshal(b, &static))
		require.Len(t, static.Experimental.LocalPlugins, 1)
		var pluginName string
		for name, lp := range static.Experimental.LocalPlugins {
			pluginName = name
			assert.Equal(t, tree.Module, lp.ModuleName)
		}

		files, err := filepath.Glob(filepath.Join(dir, "dynamic*.yml"))
		require.NoError(t, err)
		require.NotEmpty(t, files)
		env := regexp.MustCompile(`\{\{ env "[A-Z_]+" \}\}`)
		for _, f := range files {
			t.Run(filepath.Base(f), func(t *testing.T) {
				b, err := os.ReadFile(f)
				require.NoError(t, err)
				// Traefik renders the file provider's templates; a test secret stands in.
				b = env.ReplaceAll(b, []byte(secret))
				var dyn struct {
					HTTP struct {
						Routers map[string]struct {
							Middlewares []string `yaml:"middlewares"`
						} `yaml:"routers"`
						Middlewares map[string]struct {
							Plugin map[string]map[string]any `yaml:"plugin"`
						} `yaml:"middlewares"`
					} `yaml:"http"`
				}
				require.NoError(t, yaml.Unmarshal(b, &dyn))
				n := 0
				for name, mw := range dyn.HTTP.Middlewares {
					opts, ok := mw.Plugin[pluginName]
					if !ok {
						continue
					}
					n++
					h, err := plugin.newHandler(ctx, &upstream{}, opts, name+"@file")
					require.NoError(t, err)
					assert.NotNil(t, h)
					used := false
					for _, r := range dyn.HTTP.Routers {
						used = used || slices.Contains(r.Middlewares, name)
					}
					assert.True(t, used, "a router uses middleware %s", name)
				}
				assert.Equal(t, 1, n, "one replayguard middleware")
			})
		}
	})

	t.Run("every signature scheme runs under the interpreter", func(t *testing.T) {
		secretOpt := "base64:" + base64.StdEncoding.EncodeToString([]byte(secret))
		tests := []struct {
			scheme string
			signer signature.Signer
			body   string
		}{
			{"jwt", &jwtsig.Signer{KeyID: keyID, Key: []byte(secret)}, `{"amount":1}`},
			{"rfc9421", &httpsig.Signer{KeyID: keyID, Secret: []byte(secret)}, `{"amount":2}`},
			{webhooksig.PresetStripe, &webhooksig.Signer{Preset: webhooksig.PresetStripe, Secret: []byte(secret)}, `{"id":"evt_1","type":"charge.succeeded"}`},
			{webhooksig.PresetStandardWebhooks, &webhooksig.Signer{Preset: webhooksig.PresetStandardWebhooks, Secret: []byte(secret)}, `{"type":"invoice.paid"}`},
			{webhooksig.PresetSlack, &webhooksig.Signer{Preset: webhooksig.PresetSlack, Secret: []byte(secret)}, `token=x&team_id=T1`},
		}
		for _, tt := range tests {
			t.Run(tt.scheme, func(t *testing.T) {
				up := &upstream{}
				opts := map[string]any{
					"scheme": tt.scheme,
					"keys":   []any{map[string]any{"id": keyID, "secrets": []any{secretOpt}}},
				}
				h, err := plugin.newHandler(ctx, up, opts, tt.scheme+"@file")
				require.NoError(t, err)
				body := []byte(tt.body)
				r := httptest.NewRequest(http.MethodPost, "http://api.example.com/v1/hooks", bytes.NewReader(body))
				r.Header.Set(signature.IdempotencyKeyHeader, uuid.NewString())
				require.NoError(t, tt.signer.Sign(r, body))
				req := signedRequest{method: http.MethodPost, target: "/v1/hooks", header: r.Header}

				rec := serve(h, req.request(body))
				require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
				assert.Equal(t, keyID, up.key)
				assert.Equal(t, body, up.body)

				rec = serve(h, req.request(body))
				assert.Equal(t, http.StatusUnauthorized, rec.Code)
				assert.Equal(t, "nonce_replayed", problemCode(t, rec))

				rec = serve(h, req.request([]byte(tt.body+" ")))
				assert.Equal(t, http.StatusUnauthorized, rec.Code)
				assert.Equal(t, "signature_invalid", problemCode(t, rec))
				if tt.scheme == "jwt" {
					bad := req.request(body)
					bad.Header.Set("Authorization", "Bearer a.b.c")
					rec = serve(h, bad)
					assert.Equal(t, "signature_malformed", problemCode(t, rec))
					assert.Equal(t, `Bearer error="invalid_token"`, rec.Header().Get("WWW-Authenticate"), "the challenge survives the interpreter")
					bad = req.request(body)
					bad.Header.Del("Authorization")
					rec = serve(h, bad)
					assert.Equal(t, "signature_missing", problemCode(t, rec))
					assert.Equal(t, "Bearer", rec.Header().Get("WWW-Authenticate"))
				}
				assert.EqualValues(t, 1, up.hits.Load())
				assert.Empty(t, logs.take())
			})
		}
	})

	// Ed25519 public keys are a named byte-slice type, which the
	// interpreter lets pass for []byte in a type assertion: a key given as
	// a JWK, and a DPoP proof key, must still be taken for what they are.
	t.Run("Ed25519 keys as JWK and as DPoP proof keys", func(t *testing.T) {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		jwk, err := signature.PublicJWK(pub)
		require.NoError(t, err)
		secretOpt := "base64:" + base64.StdEncoding.EncodeToString([]byte(secret))
		tests := []struct {
			name   string
			opts   map[string]any
			signer signature.Signer
		}{
			{"jwt key as JWK", map[string]any{
				"scheme": "jwt",
				"keys":   []any{map[string]any{"id": keyID, "jwk": jwk}},
			}, &jwtsig.Signer{KeyID: keyID, Key: priv}},
			{"jwt key as JWK with its algorithm", map[string]any{
				"scheme": "jwt",
				"keys":   []any{map[string]any{"id": keyID, "algorithm": "EdDSA", "jwk": jwk}},
			}, &jwtsig.Signer{KeyID: keyID, Key: priv}},
			{"DPoP proof", map[string]any{
				"scheme": "jwt",
				"jwt":    map[string]any{"dpop": "true"},
				"keys":   []any{map[string]any{"id": keyID, "secrets": []any{secretOpt}}},
			}, &jwtsig.DPoPSigner{Key: priv, Mint: &jwtsig.Signer{KeyID: keyID, Key: []byte(secret)}}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				up := &upstream{}
				h, err := plugin.newHandler(ctx, up, tt.opts, "ed25519@file")
				require.NoError(t, err)
				body := []byte(`{"amount":3}`)
				r := httptest.NewRequest(http.MethodPost, "http://api.example.com/v1/charges", bytes.NewReader(body))
				r.Header.Set(signature.IdempotencyKeyHeader, uuid.NewString())
				require.NoError(t, tt.signer.Sign(r, body))
				req := signedRequest{method: http.MethodPost, target: "/v1/charges", header: r.Header}

				rec := serve(h, req.request(body))
				require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
				assert.Equal(t, keyID, up.key)

				rec = serve(h, req.request(body))
				assert.Equal(t, http.StatusUnauthorized, rec.Code)
				assert.Equal(t, "nonce_replayed", problemCode(t, rec))

				rec = serve(h, req.request([]byte(`{"amount":4}`)))
				assert.Equal(t, http.StatusUnauthorized, rec.Code)
				assert.Equal(t, "signature_invalid", problemCode(t, rec))
				assert.EqualValues(t, 1, up.hits.Load())
				assert.Empty(t, logs.take())
			})
		}
	})

	t.Run("invalid configuration fails New", func(t *testing.T) {
		opts := pluginOptions()
		opts["keys"] = []any{map[string]any{"id": keyID, "secrets": []any{""}}}
		h, err := plugin.newHandler(ctx, &upstream{}, opts, "broken@file")
		require.Error(t, err)
		assert.Nil(t, h)
		assert.Contains(t, err.Error(), "broken@file")
		assert.Contains(t, err.Error(), "keys[0].secrets[0]")
	})
}
