package resp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// Idle connection checks.
const (
	// checkAfter is how long a connection may sit idle before it is checked
	// for a close by the server (a restart, a `timeout` setting) on its way
	// out of the pool.
	checkAfter = time.Second
	// checkWait is how long the check waits for the connection to report
	// end of file; a healthy connection costs that much.
	checkWait = 100 * time.Microsecond
)

// conn is one connection to one node.
type conn struct {
	addr string
	// raw is the TCP connection; nc is raw or the TLS connection over it.
	raw, nc net.Conn
	rd      reader
	// idleSince is when the connection went back to the pool.
	idleSince time.Time
}

// dial connects to addr and authenticates, within limit and ctx.
func (c *Client) dial(ctx context.Context, addr string, limit time.Duration) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cn, err := c.connect(ctx, addr)
	if err != nil {
		return nil, err
	}
	if err := c.hello(ctx, cn); err != nil {
		_ = cn.nc.Close()
		return nil, err
	}
	return cn, nil
}

// connect opens a connection to addr, with TLS when configured, within
// ctx; nothing is sent on it.
func (c *Client) connect(ctx context.Context, addr string) (*conn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("resp: %w", err)
	}
	cn := &conn{addr: addr, raw: raw, nc: raw}
	if c.opts.TLS != nil {
		cfg := c.opts.TLS.Clone()
		if cfg.ServerName == "" {
			host, _, _ := net.SplitHostPort(addr)
			cfg.ServerName = host
		}
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return nil, fmt.Errorf("resp: TLS handshake with %s: %w", addr, err)
		}
		cn.nc = tc
	}
	cn.rd.br = bufio.NewReaderSize(cn.nc, readBufSize)
	return cn, nil
}

// hello sends AUTH and SELECT, as configured, in one round trip.
func (c *Client) hello(ctx context.Context, cn *conn) error {
	var b []byte
	var names []string
	if c.opts.Password != "" {
		args := []any{"AUTH", c.opts.Password}
		if c.opts.Username != "" {
			args = []any{"AUTH", c.opts.Username, c.opts.Password}
		}
		b, _ = appendCommand(b, args)
		names = append(names, "AUTH")
	}
	if c.opts.DB != 0 {
		b, _ = appendCommand(b, []any{"SELECT", c.opts.DB})
		names = append(names, "SELECT")
	}
	if len(names) == 0 {
		return nil
	}
	deadline, _ := ctx.Deadline()
	v, err := cn.exchange(deadline, b, len(names), c.opts.MaxReplyBytes)
	if err != nil {
		return fmt.Errorf("resp: %s on %s: %w", strings.Join(names, " and "), cn.addr, err)
	}
	if e, ok := v.(*Error); ok {
		return fmt.Errorf("%w (%s on %s)", e, strings.Join(names, " and "), cn.addr)
	}
	return nil
}

// exchange writes b, which holds n commands, and reads their n replies
// before deadline. It returns the first error reply, else the last reply.
// An error leaves the connection unusable.
func (cn *conn) exchange(deadline time.Time, b []byte, n int, limit int64) (any, error) {
	vs, err := cn.exchangeAll(deadline, b, n, false, limit)
	if err != nil {
		return nil, err
	}
	for _, v := range vs {
		if _, ok := v.(*Error); ok {
			return v, nil
		}
	}
	return vs[n-1], nil
}

// exchangeAll writes b, which holds n commands, each after an ASKING when
// asking, and returns the n commands' replies, read before deadline (those
// of the ASKINGs dropped). An error leaves the connection unusable.
func (cn *conn) exchangeAll(deadline time.Time, b []byte, n int, asking bool, limit int64) ([]any, error) {
	if err := cn.nc.SetDeadline(deadline); err != nil {
		return nil, fmt.Errorf("resp: %w", err)
	}
	if _, err := cn.nc.Write(b); err != nil {
		return nil, fmt.Errorf("resp: write to %s: %w", cn.addr, err)
	}
	out := make([]any, 0, n)
	for len(out) < n {
		if asking {
			if _, err := cn.rd.read(limit); err != nil {
				return nil, fmt.Errorf("resp: read from %s: %w", cn.addr, err)
			}
		}
		v, err := cn.rd.read(limit)
		if err != nil {
			return nil, fmt.Errorf("resp: read from %s: %w", cn.addr, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// alive reports whether an idle connection is still open: nothing buffered,
// and a read finds nothing to read rather than the end of the stream. It
// reads the TCP connection under any TLS, which is fine since any byte at
// all condemns the connection.
func (cn *conn) alive() bool {
	if cn.rd.br.Buffered() > 0 {
		return false
	}
	if err := cn.raw.SetReadDeadline(time.Now().Add(checkWait)); err != nil {
		return false
	}
	var b [1]byte
	n, err := cn.raw.Read(b[:])
	return n == 0 && errors.Is(err, os.ErrDeadlineExceeded)
}
