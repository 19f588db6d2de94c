// Package redistest starts real redis-server processes for tests: a
// standalone server or a 3-master, 3-replica cluster on free loopback ports,
// each in its own temporary directory, with helpers to kill and restart them.
// Everything is stopped in t.Cleanup.
//
// When redis-server is not installed the test fails under CI=true and is
// skipped otherwise, with the hint `apt-get install -y redis-server`.
package redistest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long a server may take to answer its first PING.
const startTimeout = 10 * time.Second

// Server is one redis-server process.
type Server struct {
	t        testing.TB
	port     int
	dir      string
	args     []string
	tls      *tls.Config // set for WithTLS servers
	caFile   string
	password string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	out    *lockedWriter
}

// Option configures Start.
type Option func(*config)

type config struct {
	args     []string
	tls      bool
	password string
}

// WithPassword requires clients to authenticate (--requirepass); the
// server's own Do authenticates first.
func WithPassword(pw string) Option {
	return func(c *config) {
		c.password = pw
		c.args = append(c.args, "--requirepass", pw)
	}
}

// WithPersistence makes the server write every command to its append-only
// file before answering (`--appendonly yes --appendfsync always`), so that
// a write acknowledged before Kill survives Restart. Default: no
// persistence at all (`--save "" --appendonly no`).
func WithPersistence() Option {
	return func(c *config) {
		c.args = append(c.args, "--appendonly", "yes", "--appendfsync", "always")
	}
}

// WithArgs appends raw redis-server arguments, such as
// `"--maxmemory", "10mb"`.
func WithArgs(args ...string) Option {
	return func(c *config) { c.args = append(c.args, args...) }
}

// Binary returns the path of redis-server, failing t under CI=true and
// skipping it otherwise when it is not installed.
func Binary(t testing.TB) string {
	t.Helper()
	return lookPath(t, "redis-server")
}

func lookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	pkg := "redis-server"
	if name == "redis-cli" {
		pkg = "redis-tools"
	}
	msg := fmt.Sprintf("%s not found (apt-get install -y %s)", name, pkg)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Start runs a standalone redis-server bound to 127.0.0.1 on a free port,
// with its own temporary directory. It is killed in t.Cleanup.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	var c config
	for _, o := range opts {
		o(&c)
	}
	s := newServer(t, c)
	t.Cleanup(s.stop)
	s.start()
	return s
}

func newServer(t testing.TB, c config) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	args := []string{bin, "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--logfile", "", "--loglevel", "warning"}
	s := &Server{t: t, dir: dir, password: c.password}
	if c.tls {
		tlsArgs, cfg, caFile := setupTLS(t, dir)
		args = append(args, tlsArgs...)
		s.tls, s.caFile = cfg, caFile
	}
	s.args = append(args, c.args...)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if s.port == 0 || attempt > 0 && !s.fixedPort() {
			s.port = freePort(s.t)
		}
		if lastErr = s.launch(); lastErr == nil {
			return
		}
	}
	s.t.Fatalf("redistest: redis-server did not start: %v", lastErr)
}

// fixedPort reports whether the port must be kept (a restart keeps it).
func (s *Server) fixedPort() bool { return s.cmd != nil }

func (s *Server) launch() error {
	args := append(append([]string(nil), s.args...), "--port", strconv.Itoa(s.port))
	if s.tls != nil {
		args = append(args[:len(args)-2], "--port", "0", "--tls-port", strconv.Itoa(s.port))
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = s.dir
	w := &lockedWriter{w: &strings.Builder{}}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("exited: %s", w.String())
		default:
		}
		// NOAUTH from a server with a password means up, too.
		var e ErrReply
		if r, err := s.Do("PING"); err == nil && r == "PONG" || errors.As(err, &e) && strings.HasPrefix(string(e), "NOAUTH") {
			s.mu.Lock()
			s.cmd, s.exited, s.out = cmd, exited, w
			s.mu.Unlock()
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-exited
	return fmt.Errorf("no PONG within %v: %s", startTimeout, w.String())
}

// Addr returns host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Dir returns the server's working directory (its AOF and RDB files).
func (s *Server) Dir() string { return s.dir }

// Kill stops the server with SIGKILL, as a crash would, and waits for it to
// exit. Killing a stopped server does nothing.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Process.Signal(syscall.SIGCONT)
	<-exited
	// Wait until the port is free so that Restart can bind it again.
	for i := 0; i < 200; i++ {
		c, err := net.DialTimeout("tcp", s.Addr(), 50*time.Millisecond)
		if err != nil {
			break
		}
		_ = c.Close()
		time.Sleep(5 * time.Millisecond)
	}
}

// Pause stops the server process (SIGSTOP) without killing it: it keeps
// its connections but answers nothing, as a stalled machine would.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Signal(sig)
	}
}

// running reports whether the server process is up.
func (s *Server) running() bool {
	s.mu.Lock()
	exited := s.exited
	s.mu.Unlock()
	if exited == nil {
		return false
	}
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// Logs returns what the server has written to stdout and stderr since its
// last (re)start.
func (s *Server) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		return ""
	}
	return s.out.String()
}

// Restart starts the server again on the same port and directory, after a
// Kill. With WithPersistence it reloads what it had acknowledged.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	if err := s.launch(); err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

// Do sends one command to the server and returns its reply (see Do).
func (s *Server) Do(args ...string) (string, error) {
	if s.password != "" {
		return do(s.Addr(), s.tls, [][]string{{"AUTH", s.password}, args}...)
	}
	return do(s.Addr(), s.tls, args)
}

// Info returns one field of INFO, e.g. Info("used_memory").
func (s *Server) Info(field string) string {
	s.t.Helper()
	r, err := s.Do("INFO", "all")
	if err != nil {
		s.t.Fatalf("redistest: INFO: %v", err)
	}
	return InfoField(r, field)
}

func (s *Server) stop() {
	s.Kill()
}

// InfoField extracts field from an INFO reply, "" when absent.
func InfoField(info, field string) string {
	for _, line := range strings.Split(info, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == field {
			return v
		}
	}
	return ""
}

// CommandCalls returns the calls counted by INFO commandstats per command
// name (lower case, e.g. "set", "bitfield", "evalsha").
func CommandCalls(info string) map[string]int64 {
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\r\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if k, v, ok := strings.Cut(kv, "="); ok && k == "calls" {
				n, _ := strconv.ParseInt(v, 10, 64)
				out[strings.TrimPrefix(name, "cmdstat_")] = n
			}
		}
	}
	return out
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

// ErrReply is a Redis error reply.
type ErrReply string

func (e ErrReply) Error() string { return string(e) }

// Do sends one command to addr on a new connection and returns the reply:
// a status or bulk string as is, an integer in decimal, an array as its
// elements joined by "\n", a nil as "". An error reply is an ErrReply.
func Do(addr string, args ...string) (string, error) { return do(addr, nil, args) }

// do sends the commands in order on one connection and returns the last
// reply; an error reply to an earlier one stops it.
func do(addr string, tlsConfig *tls.Config, cmds ...[]string) (string, error) {
	d := &net.Dialer{Timeout: time.Second}
	var c net.Conn
	var err error
	if tlsConfig != nil {
		c, err = tls.DialWithDialer(d, "tcp", addr, tlsConfig)
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	rd := bufio.NewReader(c)
	var reply string
	for _, args := range cmds {
		var b strings.Builder
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
		if _, err := c.Write([]byte(b.String())); err != nil {
			return "", err
		}
		if reply, err = readReply(rd); err != nil {
			return "", err
		}
	}
	return reply, nil
}

func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("redistest: empty reply line")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return "", ErrReply(line[1:])
	case ':':
		return line[1:], nil
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		parts := make([]string, 0, max(n, 0))
		for i := 0; i < n; i++ {
			p, err := readReply(r)
			if err != nil {
				return "", err
			}
			parts = append(parts, p)
		}
		return strings.Join(parts, "\n"), nil
	}
	return "", fmt.Errorf("redistest: unexpected reply %q", line)
}
