package reliability

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/redisstore/redistest"
)

// maxHeaderBytes is the server's header limit, fixed in
// cmd/replayguard/serve.go (net/http allows 4 KiB past it).
const maxHeaderBytes = 64 << 10

// Signed requests with headers over the server's limit get 431, and bodies
// over max_body_bytes get 413 body_too_large, declared with Content-Length
// or sent chunked. None of them reaches the upstream or writes to Redis;
// a body exactly at the limit passes (so the stores were there to write to).
func TestOversizedInput(t *testing.T) {
	skipShort(t)
	t.Parallel()
	p := current(t)
	const maxBody = 64 << 10
	srv := redistest.Start(t)
	up := newUpstream(t)
	gws := startGateways(t, 1, gatewayConfig{upstream: up.URL, nonceStore: "redis", idemStore: "redis",
		redisAddrs: []string{srv.Addr()}, maxBodyBytes: maxBody})
	g := gws[0]
	before := idleGoroutines(t, gws)
	mon := startMonitor(gws, time.Second)
	writesBefore := redisWrites(t, srv)
	// What the gateway wrote at start (the record of its key tagging) is
	// no request's.
	keysBefore := mustDo(t, srv, "DBSIZE")

	post := func(size int) *signedReq {
		s, err := sign(http.MethodPost, "/v1/upload", uuid.NewString(), bytes.Repeat([]byte("x"), size))
		require.NoError(t, err)
		return s
	}
	bigHeader := func(fields, each int) *signedReq {
		s, err := sign(http.MethodGet, "/v1/things", "", nil)
		require.NoError(t, err)
		for i := 0; i < fields; i++ {
			s.header.Set("X-Pad-"+strconv.Itoa(i), strings.Repeat("p", each))
		}
		return s
	}
	cases := []struct {
		name    string
		req     func() *signedReq
		chunked bool
		want    string
	}{
		{"one header field of 80 KiB", func() *signedReq { return bigHeader(1, 80<<10) }, false, "431"},
		{"100 header fields of 1 KiB", func() *signedReq { return bigHeader(100, 1<<10) }, false, "431"},
		{"body one byte over, Content-Length", func() *signedReq { return post(maxBody + 1) }, false, "413 body_too_large"},
		{"body of 4 MiB, Content-Length", func() *signedReq { return post(4 << 20) }, false, "413 body_too_large"},
		{"body one byte over, chunked", func() *signedReq { return post(maxBody + 1) }, true, "413 body_too_large"},
		{"body of 4 MiB, chunked", func() *signedReq { return post(4 << 20) }, true, "413 body_too_large"},
	}
	rejected := map[string]int{}
	sent := 0
	for _, tc := range cases {
		for i := 0; i < p.oversizedEach; i++ {
			got, ctype := sendRaw(t, g.addr, tc.req(), tc.chunked)
			sent++
			assert.Equal(t, tc.want, got, tc.name)
			if strings.HasPrefix(tc.want, "413") {
				assert.Equal(t, "application/problem+json", ctype, tc.name)
			}
			_, code, _ := strings.Cut(got, " ")
			if code == "" {
				code = got
			}
			rejected[code]++
		}
	}
	assert.Zero(t, up.executions.Load(), "oversized requests that reached the upstream")
	assert.Equal(t, keysBefore, mustDo(t, srv, "DBSIZE"), "keys in Redis after oversized requests only")
	assert.Equal(t, writesBefore, redisWrites(t, srv), "Redis write commands caused by oversized requests")

	// At the limit, with Content-Length and chunked, the request passes and
	// is recorded.
	for _, chunked := range []bool{false, true} {
		got, _ := sendRaw(t, g.addr, post(maxBody), chunked)
		assert.Equal(t, "201", got, "a body of exactly max_body_bytes (chunked %v)", chunked)
	}
	assert.Equal(t, int64(2), up.executions.Load())
	assert.NotEqual(t, keysBefore, mustDo(t, srv, "DBSIZE"), "the requests at the limit were recorded")

	samples := mon.finish()
	up.CloseClientConnections()
	after := settleGoroutines(t, gws, before, p.goroutineSlack, p.settleGoroutinesFor)
	report(t, p, row{
		scenario: "oversized input", gateways: 1, requests: sent + 2, accepted: int(up.executions.Load()), rejected: rejected,
		faults:   fmt.Sprintf("%d each: headers over %d KiB (one field, many fields), bodies over %d KiB (Content-Length, chunked)", p.oversizedEach, maxHeaderBytes>>10, maxBody>>10),
		recovery: "—", recordsLost: "—",
		peakHeap: peak(samples, time.Time{}, time.Now(), func(s sample) float64 { return s.heap }), goroutines: goroutineCells(before, after),
	})
	assert.LessOrEqual(t, after[0], before[0]+p.goroutineSlack)
}

// sendRaw writes s to addr on a new connection (chunked: without a
// Content-Length) while reading the answer, and returns its status with
// the problem code ("413 body_too_large") and its Content-Type. The server
// may answer and close before the body is written; write errors are
// expected then.
func sendRaw(t *testing.T, addr string, s *signedReq, chunked bool) (string, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(30*time.Second)))
	r := s.to(context.Background(), addr)
	if chunked {
		r.ContentLength = -1
		r.Body = io.NopCloser(bytes.NewReader(s.body))
	}
	go func() { _ = r.Write(c) }()
	resp, err := http.ReadResponse(bufio.NewReader(c), r)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := strconv.Itoa(resp.StatusCode)
	if code := problemCode(b); code != "" {
		out += " " + code
	}
	return out, resp.Header.Get("Content-Type")
}

func mustDo(t *testing.T, srv *redistest.Server, args ...string) string {
	t.Helper()
	r, err := srv.Do(args...)
	require.NoError(t, err)
	return r
}

// redisWrites returns the calls of every command that can write, by name.
func redisWrites(t *testing.T, srv *redistest.Server) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for name, n := range redistest.CommandCalls(mustDo(t, srv, "INFO", "commandstats")) {
		switch name {
		case "ping", "info", "hello", "client|setinfo", "client|setname", "client", "command", "command|docs", "dbsize", "select", "auth":
		default:
			out[name] = n
		}
	}
	return out
}
