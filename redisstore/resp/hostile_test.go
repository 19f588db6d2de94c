package resp_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/redisstore/layout"
	"github.com/replayguard/replayguard/redisstore/redistest"
	"github.com/replayguard/replayguard/redisstore/resp"
)

// peer is a hostile or misbehaving server on loopback that speaks just
// enough RESP to read commands; answer writes each command's reply.
type peer struct {
	ln      net.Listener
	answer  func(w io.Writer, cmd []string) error
	conns   atomic.Int64 // connections accepted
	mu      sync.Mutex
	cmds    [][]string // commands received
	wg      sync.WaitGroup
	stopped atomic.Bool
}

func startPeer(t *testing.T, answer func(w io.Writer, cmd []string) error) *peer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &peer{ln: ln, answer: answer}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		p.stopped.Store(true)
		_ = ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *peer) Addr() string { return p.ln.Addr().String() }

func (p *peer) accept() {
	defer p.wg.Done()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.conns.Add(1)
		conns = append(conns, c)
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *peer) serve(c net.Conn) {
	defer p.wg.Done()
	defer c.Close()
	br := bufio.NewReader(c)
	for !p.stopped.Load() {
		cmd, err := readCommand(br)
		if err != nil {
			return
		}
		p.mu.Lock()
		p.cmds = append(p.cmds, cmd)
		p.mu.Unlock()
		if p.answer(c, cmd) != nil {
			return
		}
	}
}

// received returns the names of the commands received, upper-cased.
func (p *peer) received() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, c := range p.cmds {
		out = append(out, strings.Join(append([]string{strings.ToUpper(c[0])}, c[1:]...), " "))
	}
	return out
}

func readCommand(br *bufio.Reader) ([]string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(line, "*") {
		return nil, errors.New("not an array")
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil {
		return nil, err
	}
	cmd := make([]string, 0, n)
	for i := 0; i < n; i++ {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		l, err := strconv.Atoi(strings.TrimSpace(line[1:]))
		if err != nil {
			return nil, err
		}
		b := make([]byte, l+2)
		if _, err := io.ReadFull(br, b); err != nil {
			return nil, err
		}
		cmd = append(cmd, string(b[:l]))
	}
	return cmd, nil
}

func write(w io.Writer, s string) error {
	_, err := io.WriteString(w, s)
	return err
}

// standalone answers as a server without Cluster support, and everything
// but AUTH and CLUSTER with reply.
func standalone(reply string) func(io.Writer, []string) error {
	return func(w io.Writer, cmd []string) error {
		switch strings.ToUpper(cmd[0]) {
		case "AUTH":
			return write(w, "+OK\r\n")
		case "CLUSTER":
			return write(w, "-ERR This instance has cluster support disabled\r\n")
		}
		return write(w, reply)
	}
}

// A standalone server's MOVED or ASK is not followed: the node it names
// is never dialled, so it never sees the password, and the call fails
// with ErrRedirect.
func TestStandaloneRedirectIsNotFollowed(t *testing.T) {
	for _, kind := range []string{"MOVED", "ASK"} {
		t.Run(kind, func(t *testing.T) {
			elsewhere := startPeer(t, standalone("+OK\r\n"))
			srv := startPeer(t, standalone("-"+kind+" 1234 "+elsewhere.Addr()+"\r\n"))
			c := newClient(t, resp.Options{Addr: srv.Addr(), Password: "s3cret", Timeout: time.Second})
			ctx := context.Background()
			for i := 0; i < 3; i++ {
				_, err := c.Do(ctx, "GET", "k")
				assert.Zero(t, elsewhere.conns.Load(), "the named node was dialled and sent %q", elsewhere.received())
				require.ErrorIs(t, err, resp.ErrRedirect)
				var e *resp.Error
				require.ErrorAs(t, err, &e, "the reply stays in the chain")
				assert.Equal(t, kind, e.Prefix())
			}
		})
	}
}

// clusterNode answers CLUSTER SLOTS with the map slots returns (every
// slot served by the nodes it names), and every other command but AUTH
// with reply.
func clusterNode(slots func() []string, reply string, loads *atomic.Int64) func(io.Writer, []string) error {
	return func(w io.Writer, cmd []string) error {
		switch strings.ToUpper(cmd[0]) {
		case "AUTH":
			return write(w, "+OK\r\n")
		case "CLUSTER":
			loads.Add(1)
			nodes := slots()
			var b strings.Builder
			b.WriteString("*1\r\n*" + strconv.Itoa(2+len(nodes)) + "\r\n:0\r\n:16383\r\n")
			for _, a := range nodes {
				host, port, _ := net.SplitHostPort(a)
				b.WriteString("*2\r\n$" + strconv.Itoa(len(host)) + "\r\n" + host + "\r\n:" + port + "\r\n")
			}
			return write(w, b.String())
		}
		return write(w, reply)
	}
}

// In a Cluster, a MOVED or ASK naming a node absent from the slot map makes
// the Client load the map again; when the new map does not announce the
// node either, it is not dialled and the call fails with ErrRedirect.
func TestClusterRedirectToUnannouncedNode(t *testing.T) {
	for _, kind := range []string{"MOVED", "ASK"} {
		t.Run(kind, func(t *testing.T) {
			elsewhere := startPeer(t, standalone("+OK\r\n"))
			var loads atomic.Int64
			var self string
			srv := startPeer(t, clusterNode(func() []string { return []string{self} },
				"-"+kind+" 1234 "+elsewhere.Addr()+"\r\n", &loads))
			self = srv.Addr()
			c := newClient(t, resp.Options{Addr: srv.Addr(), Password: "s3cret", Timeout: time.Second})
			_, err := c.Do(context.Background(), "GET", "k")
			assert.Zero(t, elsewhere.conns.Load(), "the named node was dialled and sent %q", elsewhere.received())
			require.ErrorIs(t, err, resp.ErrRedirect)
			assert.GreaterOrEqual(t, loads.Load(), int64(2), "the map is loaded again")
		})
	}
}

// A MOVED naming a node the first map lacks but the reloaded one announces
// is followed.
func TestClusterRedirectToNodeAnnouncedOnReload(t *testing.T) {
	t.Parallel()
	target := redistest.Start(t)
	_, err := target.Do("SET", "k", "on the new node")
	require.NoError(t, err)
	var loads atomic.Int64
	var self string
	srv := startPeer(t, clusterNode(func() []string {
		if loads.Load() == 1 {
			return []string{self}
		}
		return []string{target.Addr()}
	}, "-MOVED "+strconv.Itoa(resp.Slot("k"))+" "+target.Addr()+"\r\n", &loads))
	self = srv.Addr()
	c := newClient(t, resp.Options{Addr: srv.Addr()})
	v, err := c.Do(context.Background(), "GET", "k")
	require.NoError(t, err)
	assert.Equal(t, "on the new node", v)
	assert.Equal(t, int64(2), loads.Load())
}

// hugeReply answers every command but CLUSTER with header, then streams
// filler until the client goes away or total bytes are sent.
func hugeReply(header, filler string, total int, sent *atomic.Int64) func(io.Writer, []string) error {
	return func(w io.Writer, cmd []string) error {
		if strings.EqualFold(cmd[0], "CLUSTER") {
			return write(w, "-ERR This instance has cluster support disabled\r\n")
		}
		if err := write(w, header); err != nil {
			return err
		}
		chunk := []byte(strings.Repeat(filler, (64<<10)/len(filler)))
		for n := 0; n < total; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return err
			}
			sent.Add(int64(len(chunk)))
		}
		return nil
	}
}

// A peer announcing a 400 MiB bulk string, or an array of 20 million
// elements, and sending them, is refused before anything is allocated for
// them: the reply limit derives from the largest record the stores write.
func TestHostileReplyIsBounded(t *testing.T) {
	const declared = 400 << 20
	for _, tc := range []struct {
		name, header, filler string
	}{
		{"bulk", "$" + strconv.Itoa(declared) + "\r\n", "x"},
		{"array", "*" + strconv.Itoa(20_000_000) + "\r\n", ":1\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sent atomic.Int64
			srv := startPeer(t, hugeReply(tc.header, tc.filler, declared, &sent))
			c := newClient(t, resp.Options{Addr: srv.Addr(), Timeout: 10 * time.Second})
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := c.Do(context.Background(), "GET", "k")
			runtime.ReadMemStats(&after)
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("%s: %d KiB allocated, %d KiB sent by the peer: %v", tc.name, allocated>>10, sent.Load()>>10, err)
			require.ErrorIs(t, err, resp.ErrProtocol)
			assert.Less(t, allocated, uint64(4<<20), "bytes allocated for the reply")
		})
	}
}

func TestDefaultReplyLimitFitsARecord(t *testing.T) {
	assert.Equal(t, layout.RecordBytes(idempotency.DefaultMaxResponseBytes), int64(resp.DefaultMaxReplyBytes))
	assert.Less(t, int64(resp.DefaultMaxReplyBytes), int64(4<<20))
}
