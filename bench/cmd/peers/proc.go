package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a process the run started: a target, the upstream or Redis.
type proc struct {
	name    string
	cmd     *exec.Cmd
	started time.Time
	// stdout and stderr are the files its output goes to.
	stdout, stderr string
	done           chan struct{}
	err            error
}

// startProc starts argv with its output in dir/name.stdout and
// dir/name.stderr, env added to this process's environment.
func startProc(dir, name string, env []string, argv ...string) (*proc, error) {
	p := &proc{name: name, stdout: filepath.Join(dir, name+".stdout"), stderr: filepath.Join(dir, name+".stderr"), done: make(chan struct{})}
	out, err := os.Create(p.stdout)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	errf, err := os.Create(p.stderr)
	if err != nil {
		return nil, err
	}
	defer errf.Close()
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = out, errf
	// A process group of its own: a Ctrl-C at the terminal reaches the
	// run, which stops what it started in order.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitErr is how the process ended, once it has.
func (p *proc) exitErr() error {
	if p.err == nil {
		return errors.New("exit status 0")
	}
	return p.err
}

// stop ends the process: SIGTERM, then SIGKILL after 15 s.
func (p *proc) stop() {
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tail is the end of the process's stderr, for an error message.
func (p *proc) tail() string {
	b, err := os.ReadFile(p.stderr)
	if err != nil {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// waitFor polls ready every 50 ms until it reports true, the process
// exits or 60 s pass.
func (p *proc) waitFor(ctx context.Context, what string, ready func() bool) error {
	deadline := time.Now().Add(60 * time.Second)
	for !ready() {
		if p.exited() {
			return fmt.Errorf("%s exited (%w) before %s; its stderr:\n%s", p.name, p.exitErr(), what, p.tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: timed out waiting for %s; its stderr:\n%s", p.name, what, p.tail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// firstMatch returns the first submatch of re in file, "" without one.
func firstMatch(file string, re *regexp.Regexp) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	if m := re.FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return ""
}

// listening reports whether something accepts connections on addr.
func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// freePort returns a loopback port nothing listened on a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// cpuTicks is the user and system CPU time, in clock ticks, of pid and of
// its children (nginx's workers).
func cpuTicks(pid int) (int64, error) {
	total, _, err := statTicks(pid)
	if err != nil {
		return 0, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		t, ppid, err := statTicks(child)
		if err == nil && ppid == pid {
			total += t
		}
	}
	return total, nil
}

// statTicks reads utime + stime and the parent of pid from /proc/PID/stat.
func statTicks(pid int) (ticks int64, ppid int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseStat(string(b))
}

// parseStat reads ppid, utime and stime from a /proc/PID/stat line: the
// fields after the command name in parentheses (which may hold spaces and
// parentheses itself) are state, ppid, … with utime and stime the 12th and
// 13th of them.
func parseStat(s string) (ticks int64, ppid int, err error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, errors.New("stat: no command name")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, 0, errors.New("stat: too few fields")
	}
	if ppid, err = strconv.Atoi(f[1]); err != nil {
		return 0, 0, err
	}
	u, err := strconv.ParseInt(f[11], 10, 64)
	if err != nil {
		return 0, 0, err
	}
	st, err := strconv.ParseInt(f[12], 10, 64)
	if err != nil {
		return 0, 0, err
	}
	return u + st, ppid, nil
}

// clockTicks is the kernel's clock ticks per second (CLK_TCK).
func clockTicks() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 100
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil || n <= 0 {
		return 100
	}
	return n
}

// fileSize is the size of path, 0 when it cannot be read.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// gcLine matches a GODEBUG=gctrace=1 line: the cycle's start in seconds
// since the process started, and its CPU times in ms, "A+B/C/D+E ms cpu":
// stop-the-world sweep termination, mark assists, background mark, idle
// mark and stop-the-world mark termination.
var gcLine = regexp.MustCompile(`^gc \d+ @([0-9.]+)s [^:]*: [^,]*, ([0-9.]+)\+([0-9.]+)/([0-9.]+)/([0-9.]+)\+([0-9.]+) ms cpu`)

// gcCPU sums the CPU time of the GC cycles that gctrace lines in r report
// as starting between from and to after the process started, and counts
// them.
func gcCPU(r io.Reader, from, to time.Duration) (cpu time.Duration, cycles int) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "gc ") {
			continue
		}
		m := gcLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		at, _ := strconv.ParseFloat(m[1], 64)
		if d := time.Duration(at * float64(time.Second)); d < from || d >= to {
			continue
		}
		var ms float64
		for _, f := range m[2:] {
			v, _ := strconv.ParseFloat(f, 64)
			ms += v
		}
		cpu += time.Duration(ms * float64(time.Millisecond))
		cycles++
	}
	return cpu, cycles
}

// gcCPUSince is gcCPU over the part of file from offset on.
func gcCPUSince(file string, offset int64, from, to time.Duration) (time.Duration, int) {
	f, err := os.Open(file)
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return 0, 0
	}
	return gcCPU(f, from, to)
}
