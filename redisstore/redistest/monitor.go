package redistest

import (
	"bufio"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Monitor watches the commands a server runs (MONITOR) and tells the ones
// clients sent, each a round trip (a pipeline's commands aside), from the
// ones scripts ran on the server: INFO commandstats counts both alike.
type Monitor struct {
	s    *Server
	conn net.Conn
	seq  atomic.Int64

	mu    sync.Mutex
	calls []string // names of client commands not yet taken
	seen  map[string]bool
	cond  *sync.Cond
	err   error
}

// Monitor starts watching s; it stops in t.Cleanup.
func (s *Server) Monitor(t testing.TB) *Monitor {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		t.Fatalf("redistest: MONITOR: %v", err)
	}
	rd := bufio.NewReader(c)
	cmds := [][]string{{"MONITOR"}}
	if s.password != "" {
		cmds = append([][]string{{"AUTH", s.password}}, cmds...)
	}
	for _, args := range cmds {
		var b strings.Builder
		b.WriteString("*" + strconv.Itoa(len(args)) + "\r\n")
		for _, a := range args {
			b.WriteString("$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n")
		}
		if _, err := c.Write([]byte(b.String())); err != nil {
			t.Fatalf("redistest: MONITOR: %v", err)
		}
		if _, err := readReply(rd); err != nil {
			t.Fatalf("redistest: MONITOR: %v", err)
		}
	}
	m := &Monitor{s: s, conn: c, seen: map[string]bool{}}
	m.cond = sync.NewCond(&m.mu)
	go m.read(rd)
	t.Cleanup(func() { _ = c.Close() })
	return m
}

// read parses lines such as
//
//	+1701619200.123456 [0 127.0.0.1:54321] "evalsha" "…" …
//	+1701619200.123470 [0 lua] "set" "…" …
//
// keeping the names of the commands a client sent.
func (m *Monitor) read(rd *bufio.Reader) {
	for {
		line, err := rd.ReadString('\n')
		m.mu.Lock()
		if err != nil {
			m.err = err
			m.cond.Broadcast()
			m.mu.Unlock()
			return
		}
		lb, rb := strings.IndexByte(line, '['), strings.IndexByte(line, ']')
		if lb >= 0 && rb > lb {
			from := line[lb+1 : rb]
			args := strings.Fields(line[rb+1:])
			if !strings.HasSuffix(from, " lua") && len(args) > 0 {
				name := strings.ToLower(strings.Trim(args[0], `"`))
				if name == "echo" && len(args) == 2 {
					m.seen[strings.Trim(args[1], `"`)] = true
				} else {
					m.calls = append(m.calls, name)
				}
			}
		}
		m.cond.Broadcast()
		m.mu.Unlock()
	}
}

// Calls returns the names (lower case) of the commands clients sent since
// the last Calls, in the order the server ran them, scripts' own commands
// left out. It waits until the server has reported everything it ran
// before the call.
func (m *Monitor) Calls() []string {
	m.s.t.Helper()
	marker := "redistest-monitor-" + strconv.FormatInt(m.seq.Add(1), 10)
	if _, err := m.s.Do("ECHO", marker); err != nil {
		m.s.t.Fatalf("redistest: ECHO: %v", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for !m.seen[marker] && m.err == nil {
		m.cond.Wait()
	}
	if m.err != nil {
		m.s.t.Fatalf("redistest: MONITOR: %v", m.err)
	}
	delete(m.seen, marker)
	out := m.calls
	m.calls = nil
	return out
}
