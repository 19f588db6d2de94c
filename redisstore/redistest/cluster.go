package redistest

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// NodeTimeout is the --cluster-node-timeout of StartCluster's nodes: a
// master unreachable this long is marked failed and its replica promoted.
const NodeTimeout = 2 * time.Second

// Cluster is a Redis Cluster of three masters with one replica each.
type Cluster struct {
	t     testing.TB
	Nodes []*Server
}

// StartCluster starts six cluster-enabled servers, joins them with
// `redis-cli --cluster create … --cluster-replicas 1 --cluster-yes` and
// waits until every node reports cluster_state:ok and every replica is in
// sync. Every node is killed in t.Cleanup.
//
// The nodes run with --cluster-node-timeout 2000 and
// --cluster-require-full-coverage no, so that while one master is down the
// other masters keep serving their slots.
func StartCluster(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	cli := lookPath(t, "redis-cli")
	var c config
	for _, o := range opts {
		o(&c)
	}
	args := append([]string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", strconv.Itoa(int(NodeTimeout / time.Millisecond)),
		"--cluster-require-full-coverage", "no"}, c.args...)
	cl := &Cluster{t: t, Nodes: make([]*Server, 6)}
	var wg sync.WaitGroup
	for i := range cl.Nodes {
		s := newServer(t, config{args: args})
		t.Cleanup(s.stop)
		cl.Nodes[i] = s
		wg.Add(1)
		go func() { defer wg.Done(); s.start() }()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	create := []string{"--cluster", "create"}
	create = append(create, cl.Addrs()...)
	create = append(create, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.Command(cli, create...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	if err := cl.WaitHealthy(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	return cl
}

// Addrs returns every node's address, masters and replicas.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// WaitHealthy waits until every running node reports cluster_state:ok with
// all slots served and every replica's link to its master is up.
func (c *Cluster) WaitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if last = c.unhealthy(); last == "" {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("redistest: cluster not healthy after %v: %s", timeout, last)
}

func (c *Cluster) unhealthy() string {
	for _, n := range c.Nodes {
		if !n.running() {
			continue
		}
		info, err := n.Do("CLUSTER", "INFO")
		if err != nil {
			return fmt.Sprintf("%s: %v", n.Addr(), err)
		}
		if InfoField(info, "cluster_state") != "ok" || InfoField(info, "cluster_slots_ok") != "16384" {
			return fmt.Sprintf("%s: state %s, slots ok %s", n.Addr(), InfoField(info, "cluster_state"), InfoField(info, "cluster_slots_ok"))
		}
		repl, err := n.Do("INFO", "replication")
		if err != nil {
			return fmt.Sprintf("%s: %v", n.Addr(), err)
		}
		if InfoField(repl, "role") == "slave" && InfoField(repl, "master_link_status") != "up" {
			return fmt.Sprintf("%s: replica link %s", n.Addr(), InfoField(repl, "master_link_status"))
		}
	}
	return ""
}

// Slot returns the cluster slot of key: CRC16 (XMODEM) of its hash tag, or
// of the whole key without one, modulo 16384.
func Slot(key string) int {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}

// MasterOf returns the node currently serving key's slot as master, as a
// running node sees the cluster.
func (c *Cluster) MasterOf(key string) *Server {
	c.t.Helper()
	return c.MasterOfSlot(Slot(key))
}

// MasterOfSlot returns the node currently serving slot as master, as a
// running node sees the cluster.
func (c *Cluster) MasterOfSlot(slot int) *Server {
	c.t.Helper()
	for _, n := range c.Nodes {
		if !n.running() {
			continue
		}
		nodes, err := n.Do("CLUSTER", "NODES")
		if err != nil {
			continue
		}
		if addr := slotMaster(nodes, slot); addr != "" {
			for _, m := range c.Nodes {
				if m.Addr() == addr {
					return m
				}
			}
		}
	}
	c.t.Fatalf("redistest: no master for slot %d", slot)
	return nil
}

// Slots returns the slot ranges m serves as master, as a running node sees
// the cluster.
func (c *Cluster) Slots(m *Server) [][2]int {
	c.t.Helper()
	for _, n := range c.Nodes {
		if !n.running() {
			continue
		}
		nodes, err := n.Do("CLUSTER", "NODES")
		if err != nil {
			continue
		}
		var out [][2]int
		for _, line := range strings.Split(nodes, "\n") {
			f := strings.Fields(line)
			if len(f) < 9 || !strings.HasPrefix(f[1], m.Addr()+"@") {
				continue
			}
			for _, r := range f[8:] {
				lo, hi, ok := strings.Cut(r, "-")
				if !ok {
					hi = lo
				}
				a, err1 := strconv.Atoi(lo)
				b, err2 := strconv.Atoi(hi)
				if err1 == nil && err2 == nil {
					out = append(out, [2]int{a, b})
				}
			}
		}
		return out
	}
	c.t.Fatal("redistest: no node answers CLUSTER NODES")
	return nil
}

// Masters returns the running nodes that serve slots as masters.
func (c *Cluster) Masters() []*Server {
	var out []*Server
	for _, n := range c.Nodes {
		if !n.running() {
			continue
		}
		repl, err := n.Do("INFO", "replication")
		if err == nil && InfoField(repl, "role") == "master" {
			out = append(out, n)
		}
	}
	return out
}

// KillMaster kills (SIGKILL) the master serving key's slot and returns it;
// its replica is promoted after NodeTimeout and a few election rounds.
func (c *Cluster) KillMaster(key string) *Server {
	c.t.Helper()
	m := c.MasterOf(key)
	m.Kill()
	return m
}

// Replicas returns the running nodes that replicate m.
func (c *Cluster) Replicas(m *Server) []*Server {
	var out []*Server
	for _, n := range c.Nodes {
		if !n.running() || n == m {
			continue
		}
		repl, err := n.Do("INFO", "replication")
		if err == nil && InfoField(repl, "role") == "slave" &&
			net.JoinHostPort(InfoField(repl, "master_host"), InfoField(repl, "master_port")) == m.Addr() {
			out = append(out, n)
		}
	}
	return out
}

// slotMaster finds the master serving slot in a CLUSTER NODES reply.
func slotMaster(nodes string, slot int) string {
	for _, line := range strings.Split(nodes, "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.Contains(f[2], "master") || strings.Contains(f[2], "fail") {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue // slot being migrated
			}
			lo, hi, ok := strings.Cut(r, "-")
			if !ok {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 == nil && err2 == nil && slot >= a && slot <= b {
				return addr
			}
		}
	}
	return ""
}
