package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/signature/hmacsig"
)

const memorySecret = "memory-secret-0123456789"

// newAPIUpstream answers every request as an API does: 201 with a few
// headers of its own and a JSON body of about 400 bytes.
func newAPIUpstream(t *testing.T) *httptest.Server {
	body := `{"id":"ch_%s","object":"charge","amount":1000,"currency":"eur","status":"succeeded","description":"` +
		strings.Repeat("x", 280) + `"}`
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		id := uuid.NewString()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Location", "/v1/charges/ch_"+id)
		w.Header().Set("X-Request-Id", uuid.NewString())
		w.WriteHeader(http.StatusCreated)
		_, _ = fmt.Fprintf(w, body, id)
	}))
	t.Cleanup(up.Close)
	return up
}

// memoryFigures are what /metrics says of the heap and the memory stores.
type memoryFigures struct {
	heapLive, idempotencyBytes, nonceEntries, gcs float64
}

func readMemoryFigures(t *testing.T, g *gateway) memoryFigures {
	t.Helper()
	m := scrape(t, g)
	for _, name := range []string{"replayguard_heap_live_bytes", "replayguard_idempotency_memory_bytes", "replayguard_nonce_memory_entries", "go_gc_duration_seconds_count"} {
		require.Contains(t, m, "\n"+name+" ", "/metrics has %s", name)
	}
	return memoryFigures{
		heapLive:         metricValue(t, m, "replayguard_heap_live_bytes"),
		idempotencyBytes: metricValue(t, m, "replayguard_idempotency_memory_bytes"),
		nonceEntries:     metricValue(t, m, "replayguard_nonce_memory_entries"),
		gcs:              metricValue(t, m, "go_gc_duration_seconds_count"),
	}
}

// afterTwoCollections makes garbage (unsigned requests, refused before any
// store) until the gateway has collected twice, so that its live heap
// figure counts what it holds now, and returns its figures then.
func afterTwoCollections(t *testing.T, g *gateway) memoryFigures {
	t.Helper()
	start := readMemoryFigures(t, g)
	for i := 0; ; i++ {
		if i%50 == 0 {
			if f := readMemoryFigures(t, g); f.gcs >= start.gcs+2 {
				return f
			}
		}
		resp, err := http.Post("http://"+g.addr+"/v1/charges", "application/json", strings.NewReader(`{"amount":1000}`))
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	}
}

// signedPost returns a signed POST with key as its Idempotency-Key.
func signedPost(g *gateway, key string) (*http.Request, error) {
	const body = `{"amount":1000,"currency":"eur"}`
	r, err := http.NewRequest(http.MethodPost, "http://"+g.addr+"/v1/charges", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Idempotency-Key", key)
	s := &hmacsig.Signer{KeyID: "client-a", Secret: []byte(memorySecret)}
	return r, s.Sign(r, []byte(body))
}

// fillResult is what filling a gateway's idempotency store answered.
type fillResult struct {
	stored  []string // keys answered 201
	refusal *response
	err     error
}

// fill sends signed POSTs with fresh keys from workers goroutines until
// each gets an answer other than 201, and returns the keys stored and the
// first such answer.
func fill(g *gateway, workers int) fillResult {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	defer client.CloseIdleConnections()
	var (
		mu  sync.Mutex
		res fillResult
		wg  sync.WaitGroup
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				key := uuid.NewString()
				r, err := signedPost(g, key)
				var resp *http.Response
				if err == nil {
					resp, err = client.Do(r)
				}
				if err != nil {
					mu.Lock()
					res.err = err
					mu.Unlock()
					return
				}
				b, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				mu.Lock()
				if resp.StatusCode == http.StatusCreated {
					res.stored = append(res.stored, key)
					mu.Unlock()
					continue
				}
				if res.refusal == nil {
					res.refusal = &response{status: resp.StatusCode, body: string(b), header: resp.Header}
				}
				mu.Unlock()
				return
			}
		}()
	}
	wg.Wait()
	return res
}

// TestBinaryMemoryBoundHoldsTheHeap: filled with signed POSTs past
// idempotency.memory_max_bytes, the binary's live heap grows by no more
// than the bound and a fifth (beside what its nonces hold, at most
// nonce.MemoryEntryBytes each), and by at least four fifths of it; past
// the bound a new key gets 503 store_unavailable while a stored one still
// replays.
func TestBinaryMemoryBoundHoldsTheHeap(t *testing.T) {
	const bound = 16 << 20
	up := newAPIUpstream(t)
	// A low GOGC only makes the collections, after which the live heap is
	// read, come sooner; it changes nothing the heap holds.
	g := startGateway(t, fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: %s
keys:
  - {id: client-a, secrets: [%s]}
nonce: {store: memory}
idempotency: {store: memory, memory_max_bytes: %d}
log: {access: false}
`, up.URL, memorySecret, bound), "GOGC=25")

	// The process's own heap, its connections and pools warmed up by a few
	// stored operations, less what their records and nonces count.
	for i := 0; i < 20; i++ {
		r, err := signedPost(g, uuid.NewString())
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, send(t, r).status)
	}
	f0 := afterTwoCollections(t, g)
	base := f0.heapLive - f0.idempotencyBytes - f0.nonceEntries*nonce.MemoryEntryBytes
	t.Logf("before: heap %.1f MiB, records %.0f bytes, %.0f nonces: %.1f MiB of the process's own",
		f0.heapLive/(1<<20), f0.idempotencyBytes, f0.nonceEntries, base/(1<<20))

	res := fill(g, 8)
	require.NoError(t, res.err)
	require.NotNil(t, res.refusal)
	require.Greater(t, len(res.stored), 1000)
	f := afterTwoCollections(t, g)
	held := f.heapLive - base
	nonces := f.nonceEntries * nonce.MemoryEntryBytes
	t.Logf("after %d records: heap %.1f MiB, records %.1f MiB (%.0f bytes each), %.0f nonces (at most %.1f MiB), held beyond the process's own %.1f MiB",
		len(res.stored)+20, f.heapLive/(1<<20), f.idempotencyBytes/(1<<20), f.idempotencyBytes/float64(len(res.stored)+20),
		f.nonceEntries, nonces/(1<<20), held/(1<<20))
	assert.LessOrEqual(t, f.idempotencyBytes, float64(bound))
	assert.Greater(t, f.idempotencyBytes, 0.99*bound, "filled up to the bound")
	assert.LessOrEqual(t, held, 1.2*bound+nonces, "the records hold no more heap than the bound and a fifth")
	assert.GreaterOrEqual(t, held, 0.8*bound, "the records hold most of the bound")

	// Past the bound: the documented answer, every time, and no eviction.
	assert.Equal(t, http.StatusServiceUnavailable, res.refusal.status, res.refusal.body)
	for i := 0; i < 3; i++ {
		r, err := signedPost(g, uuid.NewString())
		require.NoError(t, err)
		resp := send(t, r)
		require.Equal(t, http.StatusServiceUnavailable, resp.status, resp.body)
		assert.Equal(t, "store_unavailable", resp.code)
		assert.Equal(t, "1", resp.header.Get("Retry-After"))
	}
	// The last responses may have been returned unstored (their records
	// would have passed the bound) and stay in progress until their lease
	// ends: replay earlier ones.
	for _, key := range []string{res.stored[0], res.stored[len(res.stored)/2]} {
		r, err := signedPost(g, key)
		require.NoError(t, err)
		resp := send(t, r)
		require.Equal(t, http.StatusCreated, resp.status, resp.body)
		assert.Equal(t, "true", resp.header.Get("Idempotent-Replayed"))
		var charge struct{ Object string }
		require.NoError(t, json.NewDecoder(bytes.NewReader([]byte(resp.body))).Decode(&charge))
		assert.Equal(t, "charge", charge.Object)
	}
}
