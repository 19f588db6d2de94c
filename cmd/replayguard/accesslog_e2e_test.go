package main_test

import (
	"crypto/sha256"
	"encoding/hex"
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

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/signature/hmacsig"
)

// logRecord parses one log line, JSON or text (key=value, values quoted
// when they need it, as slog's TextHandler writes them). Text values stay
// strings.
func logRecord(line string) (map[string]any, bool) {
	var rec map[string]any
	if json.Unmarshal([]byte(line), &rec) == nil {
		return rec, true
	}
	rec = map[string]any{}
	for line != "" {
		eq := strings.IndexByte(line, '=')
		if eq <= 0 {
			return nil, false
		}
		key := line[:eq]
		line = line[eq+1:]
		var val string
		if strings.HasPrefix(line, `"`) {
			q, err := strconv.QuotedPrefix(line)
			if err != nil {
				return nil, false
			}
			val, _ = strconv.Unquote(q)
			line = line[len(q):]
		} else {
			end := strings.IndexByte(line, ' ')
			if end < 0 {
				end = len(line)
			}
			val, line = line[:end], line[end:]
		}
		rec[key] = val
		line = strings.TrimPrefix(line, " ")
	}
	return rec, len(rec) > 0
}

// accessLines returns the access lines a gateway wrote so far.
func accessLines(g *gateway) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(g.logs.String(), "\n") {
		if rec, ok := logRecord(line); ok && rec["msg"] == "request" {
			out = append(out, rec)
		}
	}
	return out
}

// lineFor waits for the access line of the request whose id is id.
func lineFor(t *testing.T, g *gateway, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, rec := range accessLines(g) {
			if rec["request_id"] == id {
				return rec
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no access line with request_id %q:\n%s", id, g.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func sha8(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:8]
}

// logUpstream records the request id each request brought, answers 201 to
// a POST and 200 otherwise with its own X-Request-Id, and holds requests
// to /slow until release is closed.
type logUpstream struct {
	*httptest.Server
	hits    atomic.Int64
	mu      sync.Mutex
	ids     []string
	entered chan struct{}
	release chan struct{}
}

func newLogUpstream(t *testing.T) *logUpstream {
	u := &logUpstream{entered: make(chan struct{}, 1), release: make(chan struct{})}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		u.mu.Lock()
		u.ids = append(u.ids, r.Header.Get("X-Request-Id"))
		u.mu.Unlock()
		if r.URL.Path == "/slow" {
			u.entered <- struct{}{}
			<-u.release
		}
		w.Header().Set("X-Request-Id", "upstream-own")
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusCreated)
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *logUpstream) lastID() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.ids) == 0 {
		return ""
	}
	return u.ids[len(u.ids)-1]
}

const logSecret = "access-log-secret-0123456789"

const logConfig = `
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: %s
keys:
  - id: client-a
    secrets: ["${LOG_SECRET}"]
%s`

func startLogGateway(t *testing.T, upstream, extra string) *gateway {
	t.Helper()
	return startGateway(t, fmt.Sprintf(logConfig, upstream, extra), "LOG_SECRET="+logSecret)
}

// signedOp is a request to g signed with logSecret, carrying header (the
// Idempotency-Key among them) under the signature.
func signedOp(t *testing.T, g *gateway, method, target, body string, header map[string]string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, "http://"+g.addr+target, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	require.NoError(t, (&hmacsig.Signer{KeyID: "client-a", Secret: []byte(logSecret)}).Sign(r, []byte(body)))
	return r
}

// checkVariable checks the fields of an access line that vary from run
// to run, and removes them.
func checkVariable(t *testing.T, rec map[string]any) {
	t.Helper()
	_, err := time.Parse(time.RFC3339Nano, rec["time"].(string))
	assert.NoError(t, err, "time")
	d := rec["duration_ms"]
	if text, ok := d.(string); ok {
		var err error
		d, err = strconv.ParseFloat(text, 64)
		assert.NoError(t, err, "duration_ms")
	}
	assert.Greater(t, d, 0.0)
	assert.True(t, strings.HasPrefix(rec["remote_addr"].(string), "127.0.0.1:"), "remote_addr %v", rec["remote_addr"])
	delete(rec, "time")
	delete(rec, "duration_ms")
	delete(rec, "remote_addr")
}

func TestLogAccessLines(t *testing.T) {
	up := newLogUpstream(t)
	g := startLogGateway(t, up.URL, "")
	const key = "op-accepted-1"
	first := signedOp(t, g, http.MethodPost, "/v1/charges?currency=eur", `{"amount":100}`,
		map[string]string{"Idempotency-Key": key, "X-Request-Id": "req-accepted", "X-Forwarded-For": "198.51.100.1, 203.0.113.7"})
	firstHeader := first.Header.Clone()

	t.Run("accepted", func(t *testing.T) {
		r := send(t, first)
		require.Equal(t, http.StatusCreated, r.status, r.body)
		assert.Equal(t, "req-accepted", r.header.Get("X-Request-Id"), "echoed, over the upstream's own")
		assert.Equal(t, "req-accepted", up.lastID(), "passed to the upstream")
		rec := lineFor(t, g, "req-accepted")
		checkVariable(t, rec)
		assert.Equal(t, map[string]any{
			"level": "INFO", "msg": "request", "route": "default", "method": "POST", "path": "/v1/charges",
			"status": 201.0, "key_id": "client-a", "idempotency": "executed", "upstream_status": 201.0,
			"forwarded_for": "203.0.113.7", "request_id": "req-accepted", "idempotency_key_sha256": sha8(key),
		}, rec)
	})

	t.Run("idempotent retry replayed", func(t *testing.T) {
		hits := up.hits.Load()
		r := send(t, signedOp(t, g, http.MethodPost, "/v1/charges?currency=eur", `{"amount":100}`,
			map[string]string{"Idempotency-Key": key, "X-Request-Id": "req-replayed"}))
		require.Equal(t, http.StatusCreated, r.status, r.body)
		assert.Equal(t, "true", r.header.Get("Idempotent-Replayed"))
		assert.Equal(t, "req-replayed", r.header.Get("X-Request-Id"), "this request's id, not the stored one")
		assert.Equal(t, hits, up.hits.Load())
		rec := lineFor(t, g, "req-replayed")
		checkVariable(t, rec)
		assert.Equal(t, map[string]any{
			"level": "INFO", "msg": "request", "route": "default", "method": "POST", "path": "/v1/charges",
			"status": 201.0, "key_id": "client-a", "idempotency": "replayed",
			"request_id": "req-replayed", "idempotency_key_sha256": sha8(key),
		}, rec, "no upstream_status: the upstream was not reached")
	})

	t.Run("nonce replayed", func(t *testing.T) {
		replay, err := http.NewRequest(http.MethodPost, first.URL.String(), strings.NewReader(`{"amount":100}`))
		require.NoError(t, err)
		replay.Header = firstHeader.Clone()
		replay.Header.Set("X-Request-Id", "req-nonce-replayed")
		r := send(t, replay)
		require.Equal(t, http.StatusUnauthorized, r.status)
		assert.Equal(t, "req-nonce-replayed", r.header.Get("X-Request-Id"))
		rec := lineFor(t, g, "req-nonce-replayed")
		checkVariable(t, rec)
		assert.Equal(t, map[string]any{
			"level": "INFO", "msg": "request", "route": "default", "method": "POST", "path": "/v1/charges",
			"status": 401.0, "code": "nonce_replayed", "key_id": "client-a", "idempotency": "none",
			"forwarded_for": "203.0.113.7", "request_id": "req-nonce-replayed", "idempotency_key_sha256": sha8(key),
		}, rec, "the signature verified: the key is known")
	})

	t.Run("signature invalid", func(t *testing.T) {
		req := signedOp(t, g, http.MethodGet, "/v1/x", "", map[string]string{"X-Request-Id": "req-invalid"})
		req.Header.Set("X-Key-Id", "mallory")
		r := send(t, req)
		require.Equal(t, http.StatusUnauthorized, r.status)
		rec := lineFor(t, g, "req-invalid")
		assert.Equal(t, "key_unknown", rec["code"])
		assert.Equal(t, 401.0, rec["status"])
		assert.NotContains(t, rec, "key_id", "a key id that verified nothing is not logged")
		assert.Equal(t, "none", rec["idempotency"])
	})

	t.Run("in progress", func(t *testing.T) {
		const slowKey = "op-slow-1"
		done := make(chan response, 1)
		go func() {
			done <- send(t, signedOp(t, g, http.MethodPost, "/slow", "b", map[string]string{"Idempotency-Key": slowKey, "X-Request-Id": "req-slow-1"}))
		}()
		select {
		case <-up.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("the first request did not reach the upstream")
		}
		r := send(t, signedOp(t, g, http.MethodPost, "/slow", "b", map[string]string{"Idempotency-Key": slowKey, "X-Request-Id": "req-slow-2"}))
		close(up.release)
		assert.Equal(t, http.StatusConflict, r.status)
		rec := lineFor(t, g, "req-slow-2")
		assert.Equal(t, "idempotency_in_progress", rec["code"])
		assert.Equal(t, "in_progress", rec["idempotency"])
		assert.Equal(t, "client-a", rec["key_id"])
		assert.Equal(t, http.StatusCreated, (<-done).status)
		assert.Equal(t, "executed", lineFor(t, g, "req-slow-1")["idempotency"])
	})

	t.Run("request id generated", func(t *testing.T) {
		uuidRE := `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`
		for _, sent := range []string{"", strings.Repeat("r", 200), "two words"} {
			h := map[string]string{}
			if sent != "" {
				h["X-Request-Id"] = sent
			}
			r := send(t, signedOp(t, g, http.MethodGet, "/v1/x?page=2", "", h))
			require.Equal(t, http.StatusOK, r.status, r.body)
			id := r.header.Get("X-Request-Id")
			assert.Regexp(t, uuidRE, id, "a new id replaces %q", sent)
			assert.Equal(t, id, up.lastID(), "the upstream gets the generated id")
			rec := lineFor(t, g, id)
			assert.Equal(t, "/v1/x", rec["path"])
			assert.Equal(t, 200.0, rec["upstream_status"])
			assert.NotContains(t, rec, "idempotency_key_sha256")
		}
	})
}

// TestLogForwardedForUntrustedPeer: X-Forwarded-For from a peer outside
// trusted_proxies is not logged; the peer's own address is.
func TestLogForwardedForUntrustedPeer(t *testing.T) {
	up := newLogUpstream(t)
	g := startLogGateway(t, up.URL, "trusted_proxies: [10.0.0.0/8]\n")
	r := send(t, signedOp(t, g, http.MethodGet, "/v1/x", "", map[string]string{"X-Request-Id": "req-untrusted", "X-Forwarded-For": "203.0.113.7"}))
	require.Equal(t, http.StatusOK, r.status, r.body)
	rec := lineFor(t, g, "req-untrusted")
	assert.NotContains(t, rec, "forwarded_for")
	assert.True(t, strings.HasPrefix(rec["remote_addr"].(string), "127.0.0.1:"))
}

func TestLogTextFormat(t *testing.T) {
	up := newLogUpstream(t)
	g := startLogGateway(t, up.URL, "log: {format: text}\n")
	require.Equal(t, http.StatusOK, send(t, signedOp(t, g, http.MethodGet, "/v1/x?q=1", "", map[string]string{"X-Request-Id": "req-text"})).status)
	rec := lineFor(t, g, "req-text")
	checkVariable(t, rec)
	assert.Equal(t, map[string]any{
		"level": "INFO", "msg": "request", "route": "default", "method": "GET", "path": "/v1/x", "status": "200",
		"key_id": "client-a", "idempotency": "none", "upstream_status": "200", "request_id": "req-text",
	}, rec)
	for _, line := range strings.Split(strings.TrimSpace(g.logs.String()), "\n") {
		assert.False(t, json.Valid([]byte(line)), "a JSON line in text format: %s", line)
		assert.True(t, strings.HasPrefix(line, "time="), "not a text line: %s", line)
	}
}

// TestLogRejectionsWithoutAccess: with access off, an accepted request
// leaves no line and a rejection still does.
func TestLogRejectionsWithoutAccess(t *testing.T) {
	up := newLogUpstream(t)
	g := startLogGateway(t, up.URL, "log: {access: false}\n")
	require.Equal(t, http.StatusOK, send(t, signedOp(t, g, http.MethodGet, "/v1/x", "", map[string]string{"X-Request-Id": "req-quiet"})).status)
	assert.Equal(t, "req-quiet", up.lastID(), "request ids are passed on with access off too")
	req := signedOp(t, g, http.MethodGet, "/v1/x", "", map[string]string{"X-Request-Id": "req-loud"})
	req.Header.Del("X-Signature")
	r := send(t, req)
	require.Equal(t, http.StatusUnauthorized, r.status)
	rec := lineFor(t, g, "req-loud")
	assert.Equal(t, "signature_missing", rec["code"])
	assert.Equal(t, "INFO", rec["level"])
	for _, rec := range accessLines(g) {
		assert.NotEqual(t, "req-quiet", rec["request_id"], "an accepted request was logged with access off")
	}
	assert.Len(t, accessLines(g), 1)
}

// TestLogRejectionSampling: past log.rejections_per_second, rejection
// lines are dropped and counted; the next line written says how many.
func TestLogRejectionSampling(t *testing.T) {
	up := newLogUpstream(t)
	g := startLogGateway(t, up.URL, "log: {access: false, rejections_per_second: 2}\n")
	bad := func() {
		req := signedOp(t, g, http.MethodGet, "/v1/x", "", nil)
		req.Header.Set("X-Signature", "v1=AAAA")
		require.Equal(t, http.StatusUnauthorized, send(t, req).status)
	}
	dropped := func() float64 {
		resp, err := http.Get("http://" + g.admin + "/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return metricValue(t, string(b), "replayguard_log_dropped_total")
	}
	assert.Zero(t, dropped(), "exported before the first drop")
	const sent = 20
	for i := 0; i < sent; i++ {
		bad()
	}
	// The line written after a pause reports the drops before it.
	time.Sleep(1100 * time.Millisecond)
	bad()
	var lines []map[string]any
	require.Eventually(t, func() bool {
		lines = accessLines(g)
		return float64(len(lines))+dropped() == sent+1
	}, 10*time.Second, 20*time.Millisecond, "every rejection is either written or counted:\n%s", g.logs.String())
	d := dropped()
	assert.GreaterOrEqual(t, d, float64(sent/2), "at 2 lines a second most of a burst of %d is dropped", sent)
	assert.GreaterOrEqual(t, len(lines), 3)
	var reported float64
	for _, rec := range lines {
		assert.Equal(t, "signature_malformed", rec["code"])
		if n, ok := rec["lines_dropped"].(float64); ok {
			reported += n
		}
	}
	assert.Equal(t, d, reported, "the lines written account for every line dropped")
	assert.Contains(t, lines[len(lines)-1], "lines_dropped")
}

// TestLogForwardAuth: the forward-auth endpoint's lines name the request
// the trusted proxy describes.
func TestLogForwardAuth(t *testing.T) {
	g := startGateway(t, faAuthOnlyConfig)
	auth := authAddr(t, g)
	const body = `{"amount":100}`
	orig := signedTo(t, "api.example.com", http.MethodPost, "/v1/charges?x=1", body)
	check := forwardAuthRequest(t, auth, orig, body, true)
	check.Header.Set("X-Request-Id", "req-fa-1")
	r := send(t, check)
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Equal(t, "req-fa-1", r.header.Get("X-Request-Id"))
	rec := lineFor(t, g, "req-fa-1")
	checkVariable(t, rec)
	assert.Equal(t, map[string]any{
		"level": "INFO", "msg": "request", "route": "default", "method": "POST", "path": "/v1/charges",
		"status": 200.0, "key_id": "client-a", "idempotency": "none", "forwarded_for": "203.0.113.9",
		"request_id": "req-fa-1", "idempotency_key_sha256": sha8(orig.Header.Get("Idempotency-Key")),
	}, rec)

	again := forwardAuthRequest(t, auth, orig, body, true)
	again.Header.Set("X-Request-Id", "req-fa-2")
	require.Equal(t, http.StatusUnauthorized, send(t, again).status)
	rec = lineFor(t, g, "req-fa-2")
	assert.Equal(t, "nonce_replayed", rec["code"])
	assert.Equal(t, "client-a", rec["key_id"])
}

// TestLogNoSecrets sends requests carrying a known secret, signature,
// token, body, query and Idempotency-Key, accepted and refused, and finds
// none of them anywhere in the output, JSON or text.
func TestLogNoSecrets(t *testing.T) {
	const (
		bodyMarker  = "BODY-MARKER-7f3a9c"
		idemKey     = "IDEM-KEY-MARKER-91b2d4"
		badIdemKey  = "IDEM-MALFORMED-MARKER-"
		querySecret = "QUERY-SECRET-55e0"
		token       = "TOKEN-MARKER.e1c8.sig"
	)
	up := newLogUpstream(t)
	g := startLogGateway(t, up.URL, "")
	body := `{"note":"` + bodyMarker + `"}`
	hdr := map[string]string{"Idempotency-Key": idemKey, "Authorization": "Bearer " + token, "X-Request-Id": "req-secret-1"}
	first := signedOp(t, g, http.MethodPost, "/v1/charges?api_key="+querySecret, body, hdr)
	sig := strings.TrimPrefix(first.Header.Get("X-Signature"), "v1=")
	require.NotEmpty(t, sig)
	firstHeader := first.Header.Clone()
	require.Equal(t, http.StatusCreated, send(t, first).status)

	replay, err := http.NewRequest(http.MethodPost, first.URL.String(), strings.NewReader(body))
	require.NoError(t, err)
	replay.Header = firstHeader.Clone()
	replay.Header.Set("X-Request-Id", "req-secret-2")
	require.Equal(t, http.StatusUnauthorized, send(t, replay).status)

	tampered, err := http.NewRequest(http.MethodPost, first.URL.String(), strings.NewReader(body+" "))
	require.NoError(t, err)
	tampered.Header = firstHeader.Clone()
	tampered.Header.Set("X-Request-Id", "req-secret-3")
	require.Equal(t, http.StatusUnauthorized, send(t, tampered).status)

	hdr["Idempotency-Key"] = badIdemKey + strings.Repeat("x", 300)
	hdr["X-Request-Id"] = "req-secret-4"
	malformed := send(t, signedOp(t, g, http.MethodPost, "/v1/charges", body, hdr))
	require.Equal(t, "idempotency_key_malformed", malformed.code)

	for _, id := range []string{"req-secret-1", "req-secret-2", "req-secret-3", "req-secret-4"} {
		lineFor(t, g, id)
	}
	logs := g.logs.String()
	for _, s := range []string{logSecret, sig, token, bodyMarker, idemKey, badIdemKey, querySecret} {
		assert.NotContains(t, logs, s)
	}

	// A JWT gateway, logging text: the subject is logged, the token not.
	jwtUp := newLogUpstream(t)
	jg := startGateway(t, fmt.Sprintf(trustJWTConfig, jwtUp.URL)+"admin_listen: 127.0.0.1:0\nlog: {format: text}\n")
	tok := hsToken(t, "key-a", trustJWTSecretA, jwt.MapClaims{"jti": uuid.NewString(), "iat": time.Now().Unix(), "sub": "alice"})
	get := func(id string) response {
		r, err := http.NewRequest(http.MethodGet, "http://"+jg.addr+"/v1/me?q="+querySecret, nil)
		require.NoError(t, err)
		r.Header.Set("Authorization", "Bearer "+tok)
		r.Header.Set("X-Request-Id", id)
		return send(t, r)
	}
	require.Equal(t, http.StatusOK, get("req-jwt-1").status)
	require.Equal(t, http.StatusUnauthorized, get("req-jwt-2").status)
	rec := lineFor(t, jg, "req-jwt-1")
	assert.Equal(t, "key-a", rec["key_id"])
	assert.Equal(t, "alice", rec["subject"])
	rec = lineFor(t, jg, "req-jwt-2")
	assert.Equal(t, "nonce_replayed", rec["code"])
	assert.Equal(t, "alice", rec["subject"])
	logs = jg.logs.String()
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	for _, s := range append(parts, trustJWTSecretA, querySecret) {
		assert.NotContains(t, logs, s)
	}
}

// TestLogLevelAndFormatWholeProcess: log.level and log.format hold for
// every line of the process, from the first: at warn, in text, the start-up
// warning is text, and no info line (start-up, requests, rejections,
// shutdown) is written.
func TestLogLevelAndFormatWholeProcess(t *testing.T) {
	up := newLogUpstream(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	path := filepath.Join(t.TempDir(), "replayguard.yaml")
	doc := fmt.Sprintf("listen: %s\nupstream: %s\nkeys:\n  - id: client-a\n    secrets: [%s]\nlog: {level: warn, format: text}\n", addr, up.URL, logSecret)
	require.NoError(t, os.WriteFile(path, []byte(doc), 0o600))
	require.NoError(t, os.Chmod(path, 0o644), "group- and world-readable: a warning")
	cmd := exec.Command(binary(t), "serve", "--config", path)
	var out syncBuffer
	cmd.Stderr = &out
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	})
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}, 30*time.Second, 20*time.Millisecond, "the gateway did not start:\n%s", out.String())

	r, err := http.Get("http://" + addr + "/v1/x")
	require.NoError(t, err)
	_ = r.Body.Close()
	require.Equal(t, http.StatusUnauthorized, r.StatusCode)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-exited:
		exited <- nil
	case <-time.After(10 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	logs := strings.TrimSpace(out.String())
	require.NotEmpty(t, logs)
	for _, line := range strings.Split(logs, "\n") {
		rec, ok := logRecord(line)
		require.True(t, ok, line)
		assert.False(t, json.Valid([]byte(line)), "a JSON line: %s", line)
		assert.NotEqual(t, "INFO", rec["level"], "an info line at level warn: %s", line)
	}
	assert.Contains(t, logs, `level=WARN msg="configuration file with literal secrets is readable by group or others`)
	assert.NotContains(t, logs, logSecret)
}
