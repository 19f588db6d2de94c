package main_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/signature/hmacsig"
)

const durableSecret = "durable-secret-0123456789"

// durableUpstream answers every operation with a body and a header no other
// execution could reproduce, counts executions per Idempotency-Key, and
// holds requests to /slow until released.
type durableUpstream struct {
	*httptest.Server
	mu      sync.Mutex
	runs    map[string]int
	release chan struct{}
}

func newDurableUpstream(t *testing.T) *durableUpstream {
	u := &durableUpstream{runs: map[string]int{}, release: make(chan struct{})}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if k := r.Header.Get("Idempotency-Key"); k != "" {
			u.mu.Lock()
			u.runs[k]++
			u.mu.Unlock()
		}
		if r.URL.Path == "/slow" {
			select {
			case <-u.release:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("X-Execution", uuid.NewString())
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusCreated)
		_, _ = fmt.Fprintf(w, "executed %s %s once: %s\x00\xff", r.Method, r.URL.Path, uuid.NewString())
	}))
	t.Cleanup(func() {
		select {
		case <-u.release:
		default:
			close(u.release)
		}
		u.Close()
	})
	return u
}

func (u *durableUpstream) executions(key string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.runs[key]
}

// durableReq is one signed request and what the gateway answered.
type durableReq struct {
	method, path, body, idemKey string
	header                      http.Header
	status                      int
	respBody                    string
	execution                   string
}

func signDurable(t *testing.T, method, path, body, idemKey string) *durableReq {
	t.Helper()
	r, err := http.NewRequest(method, "http://gateway"+path, strings.NewReader(body))
	require.NoError(t, err)
	if idemKey != "" {
		r.Header.Set("Idempotency-Key", idemKey)
	}
	require.NoError(t, (&hmacsig.Signer{KeyID: "client", Secret: []byte(durableSecret)}).Sign(r, []byte(body)))
	return &durableReq{method: method, path: path, body: body, idemKey: idemKey, header: r.Header}
}

// do sends d (its very headers: a replay when sent twice) to g.
func (d *durableReq) do(ctx context.Context, g *gateway) (*http.Response, string, error) {
	r, err := http.NewRequestWithContext(ctx, d.method, "http://"+g.addr+d.path, strings.NewReader(d.body))
	if err != nil {
		return nil, "", err
	}
	r.Header = d.header.Clone()
	r.Host = "gateway" // as signed, whatever port the gateway has now
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// TestBinaryDiskStoreSurvivesRestart drives a gateway on the disk store
// with concurrent clients, stops it (SIGKILL, or SIGTERM) while they run,
// restarts it on the same configuration file, and checks that nothing it
// acknowledged was lost: every accepted nonce is still nonce_replayed,
// every completed POST is replayed byte for byte without reaching the
// upstream, and a POST that was running at the kill is held until its
// lease ends and then runs again.
func TestBinaryDiskStoreSurvivesRestart(t *testing.T) {
	for _, c := range []struct {
		name   string
		stores string // configuration lines naming the store, or none
		sig    syscall.Signal
	}{
		{"DefaultStores/SIGKILL", "", syscall.SIGKILL},
		{"DefaultStores/SIGTERM", "", syscall.SIGTERM},
		{"ExplicitDisk/SIGKILL", "nonce: {store: disk}\nidempotency: {store: disk, lease: 2s}\ndisk: {path: state, fsync: true}\n", syscall.SIGKILL},
		{"ExplicitDisk/SIGTERM", "nonce: {store: disk}\nidempotency: {store: disk}\ndisk: {path: state, fsync: true}\n", syscall.SIGTERM},
	} {
		t.Run(c.name, func(t *testing.T) {
			up := newDurableUpstream(t)
			stores := c.stores
			if stores == "" {
				stores = "idempotency: {lease: 2s}\n"
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "gw.yaml")
			require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: %s
keys: [{id: client, secrets: [%s]}]
%s`, up.URL, durableSecret, stores)), 0o600))
			g := startGatewayAt(t, path)
			dataDir := filepath.Join(dir, "gw.yaml.data")
			if c.stores != "" {
				dataDir = filepath.Join(dir, "state")
			}
			assert.Contains(t, g.logs.String(), `"msg":"stores","nonce":"disk (exact)","idempotency":"disk","disk_path":"`+dataDir+`"`)

			// Two POSTs stay in progress at the upstream (SIGKILL only:
			// a graceful stop waits for them).
			var running []*durableReq
			if c.sig == syscall.SIGKILL {
				for i := 0; i < 2; i++ {
					d := signDurable(t, http.MethodPost, "/slow", `{"slow":true}`, uuid.NewString())
					running = append(running, d)
					go func() { _, _, _ = d.do(context.Background(), g) }()
				}
				require.Eventually(t, func() bool {
					return up.executions(running[0].idemKey) == 1 && up.executions(running[1].idemKey) == 1
				}, 10*time.Second, 10*time.Millisecond)
			}

			// 100 GETs and 30 POSTs one by one, then 8 clients until the stop.
			var mu sync.Mutex
			var acked []*durableReq
			send := func(ctx context.Context, d *durableReq) {
				resp, body, err := d.do(ctx, g)
				if err != nil || resp.StatusCode/100 != 2 {
					return // not acknowledged: nothing to keep
				}
				d.status, d.respBody, d.execution = resp.StatusCode, body, resp.Header.Get("X-Execution")
				mu.Lock()
				acked = append(acked, d)
				mu.Unlock()
			}
			for i := 0; i < 130; i++ {
				if i < 100 {
					send(context.Background(), signDurable(t, http.MethodGet, fmt.Sprintf("/v1/items/%d", i), "", ""))
				} else {
					send(context.Background(), signDurable(t, http.MethodPost, "/v1/charges", fmt.Sprintf(`{"n":%d}`, i), uuid.NewString()))
				}
			}
			require.Len(t, acked, 130, "every sequential request was acknowledged")
			ctx, stop := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for w := 0; w < 8; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ctx.Err() == nil; i++ {
						if i%2 == 0 {
							send(ctx, signDurable(t, http.MethodGet, "/v1/items/x", "", ""))
						} else {
							send(ctx, signDurable(t, http.MethodPost, "/v1/charges", fmt.Sprintf(`{"w":%d}`, i), uuid.NewString()))
						}
					}
				}()
			}
			time.Sleep(1500 * time.Millisecond)
			require.NoError(t, g.cmd.Process.Signal(c.sig))
			select {
			case err := <-g.exited:
				g.exited <- err // for the cleanup's wait
			case <-time.After(40 * time.Second):
				t.Fatal("the gateway did not exit")
			}
			stop()
			wg.Wait()
			mu.Lock()
			acknowledged := append([]*durableReq(nil), acked...)
			mu.Unlock()
			require.Greater(t, len(acknowledged), 200, "concurrent clients were acknowledged before the stop")

			g2 := startGatewayAt(t, path)
			probe, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for _, d := range running {
				resp, body, err := signDurable(t, http.MethodPost, "/slow", d.body, d.idemKey).do(probe, g2)
				require.NoError(t, err)
				assert.Equal(t, http.StatusConflict, resp.StatusCode, "still leased after the restart: %s", body)
			}
			replays, stored := 0, 0
			for _, d := range acknowledged {
				resp, body, err := d.do(context.Background(), g2)
				require.NoError(t, err)
				require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the acknowledged %s %s was accepted again after the restart: %s", d.method, d.path, body)
				require.Contains(t, body, `"code":"nonce_replayed"`)
				replays++
				if d.idemKey == "" {
					continue
				}
				// A retry of the operation, signed anew.
				retry := signDurable(t, http.MethodPost, d.path, d.body, d.idemKey)
				resp, body, err = retry.do(context.Background(), g2)
				require.NoError(t, err)
				require.Equal(t, d.status, resp.StatusCode, body)
				require.Equal(t, "true", resp.Header.Get(idempotency.ReplayedHeader))
				require.Equal(t, d.respBody, body, "the stored response byte for byte")
				require.Equal(t, d.execution, resp.Header.Get("X-Execution"))
				require.Equal(t, 1, up.executions(d.idemKey), "the upstream ran the operation once")
				stored++
			}
			t.Logf("%s: %d acknowledged requests refused as replays after the restart, %d stored responses replayed",
				c.name, replays, stored)

			if len(running) > 0 {
				time.Sleep(2500 * time.Millisecond) // the 2s lease of the killed holder ends
				close(up.release)
				for _, d := range running {
					resp, body, err := signDurable(t, http.MethodPost, "/slow", d.body, d.idemKey).do(context.Background(), g2)
					require.NoError(t, err)
					assert.Equal(t, http.StatusCreated, resp.StatusCode, body)
					assert.Empty(t, resp.Header.Get(idempotency.ReplayedHeader), "never completed: it runs again")
					assert.Equal(t, 2, up.executions(d.idemKey))
				}
			}
		})
	}
}
