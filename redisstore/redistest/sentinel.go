package redistest

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// SentinelDownAfter is how long StartSentinel's Sentinel waits for a
// master's answer before failing it over.
const SentinelDownAfter = 2 * time.Second

// StartReplica starts a standalone server replicating master.
func StartReplica(t testing.TB, master *Server, opts ...Option) *Server {
	t.Helper()
	opts = append(opts, WithArgs("--replicaof", "127.0.0.1", strconv.Itoa(master.port)))
	return Start(t, opts...)
}

// StartSentinel starts a Sentinel monitoring master under name with a
// quorum of 1, declaring it down after SentinelDownAfter without answers.
// It is killed in t.Cleanup.
func StartSentinel(t testing.TB, name string, master *Server) *Server {
	t.Helper()
	s := newServer(t, config{})
	conf := filepath.Join(s.dir, "sentinel.conf")
	body := "sentinel monitor " + name + " 127.0.0.1 " + strconv.Itoa(master.port) + " 1\n" +
		"sentinel down-after-milliseconds " + name + " " + strconv.Itoa(int(SentinelDownAfter/time.Millisecond)) + "\n" +
		"sentinel failover-timeout " + name + " 10000\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	// The configuration file comes first, then the Sentinel flag.
	s.args = append([]string{s.args[0], conf, "--sentinel"}, s.args[1:]...)
	t.Cleanup(s.stop)
	s.start()
	return s
}
