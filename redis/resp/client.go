package resp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Client errors.
var (
	// ErrClosed reports a call on a closed Client.
	ErrClosed = errors.New("resp: client closed")
	// ErrPoolTimeout reports that every connection stayed in use for
	// Options.Timeout.
	ErrPoolTimeout = errors.New("resp: connection pool timeout")
)

// maxRedirects bounds the MOVED and ASK redirects one call follows.
const maxRedirects = 3

// Client is a RESP2 client of one Redis server or Redis Cluster, safe for
// concurrent use. It keeps a pool of connections: at most Options.PoolSize
// in use at once, idle ones reused newest first. Any I/O or protocol error
// discards the connection it happened on, and a later call dials again, so
// the Client heals by itself after a Redis restart or failover.
//
// Against a Redis Cluster it follows MOVED and ASK redirects (ASKING before
// the retried command) and remembers each slot's node from MOVED replies,
// routing later commands by the slot of their key; commands must touch one
// slot. A node that cannot be reached is forgotten and the command, not yet
// sent, goes to another: Options.Addr, Options.ClusterAddrs, then the other
// nodes learned, whose MOVED replies lead to the slot's new owner.
//
// An idle connection is checked for a close by the server before its
// reuse when it has been idle for a second, or when another connection to
// the same node has just failed, so that a call after a restart rarely
// meets a dead connection. The Client never resends a command it may have
// sent, except for the stores' commands that are safe to repeat (a nonce
// check, an idempotency Claim or Renew, PING): those are sent once more, on
// a new connection, when a pooled connection fails under them.
type Client struct {
	opts Options
	// sem holds a token per connection in use.
	sem chan struct{}

	mu     sync.Mutex
	idle   []*conn        // newest last
	slots  map[int]string // Cluster slot → node address, learned from MOVED
	closed bool
}

// New returns a Client for o. It connects lazily: the first call dials.
func New(o Options) (*Client, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Client{opts: o, sem: make(chan struct{}, o.PoolSize), slots: map[int]string{}}, nil
}

// Close closes the idle connections and makes every later call fail with
// ErrClosed; connections in use are closed when their call ends.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	idle := c.idle
	c.idle = nil
	c.mu.Unlock()
	for i := 0; i < len(idle); i++ {
		_ = idle[i].nc.Close()
	}
	return nil
}

// Do sends one command and returns its reply. Arguments may be string,
// []byte, int, int32, int64, uint, uint32, uint64, float64 or bool (sent as
// "1" or "0"); any other type is an error and nothing is sent. Replies
// decode to:
//
//	simple string   string
//	bulk string     string (binary-safe, as go-redis's Cmd.Val)
//	integer         int64
//	null bulk/array nil
//	array           []any of these, an error element as an *Error
//
// An error reply is returned as an error of type *Error. I/O errors, the
// context's and ErrProtocol are wrapped with their cause.
//
// In a Cluster the command is routed by the slot of its first argument (of
// its first key for EVAL, EVALSHA and FCALL), and redirected as the server
// says.
//
// Every write and read has a deadline of Options.Timeout, or of ctx's
// deadline when earlier; a ctx canceled while a command is under way is
// noticed at that deadline, not before.
func (c *Client) Do(ctx context.Context, args ...any) (any, error) {
	cl := call{args: args}
	cl.key, cl.keyed = commandKey(args)
	v, err := c.exec(ctx, cl)
	return reply(v, err)
}

// reply moves an error reply from the value to the error.
func reply(v any, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	if e, ok := v.(*Error); ok {
		return nil, e
	}
	return v, nil
}

// call is one command to run.
type call struct {
	args []any
	// key routes the command to its Cluster slot when keyed is set.
	key   string
	keyed bool
	// retry marks a command that may run twice with the same outcome.
	retry bool
}

// commandKey returns the key a command is routed by: its first argument,
// or for the script commands the first key.
func commandKey(args []any) (string, bool) {
	if len(args) < 2 {
		return "", false
	}
	name, _ := argString(args[0])
	if isScriptCommand(name) {
		if len(args) < 4 {
			return "", false
		}
		return argString(args[3])
	}
	return argString(args[1])
}

func isScriptCommand(name string) bool {
	for _, s := range []string{"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"} {
		if strings.EqualFold(name, s) {
			return true
		}
	}
	return false
}

func argString(a any) (string, bool) {
	switch v := a.(type) {
	case string:
		return v, true
	case []byte:
		return string(v), true
	}
	return "", false
}

// exec runs cl and returns its reply, an error reply as a value of type
// Error.
func (c *Client) exec(ctx context.Context, cl call) (any, error) {
	if len(cl.args) == 0 {
		return nil, errors.New("resp: empty command")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("resp: %w", err)
	}
	cmd, err := appendCommand(nil, cl.args)
	if err != nil {
		return nil, err
	}
	addr := c.route(cl)
	asking, fresh := false, false
	tried := []string{addr}
	redirects := 0
	for {
		v, t, err := c.roundTrip(ctx, addr, asking, fresh, cmd)
		if err != nil {
			if t.reused && !errors.Is(err, os.ErrDeadlineExceeded) {
				// The server closed a pooled connection: it may have
				// closed the others too (a restart).
				c.suspect(addr)
			}
			c.forget(addr)
			if t.unreachable {
				// Nothing was sent: a node that is gone (failed over,
				// removed) leaves the slot to be asked of another.
				if next := c.nextNode(tried); next != "" {
					tried = append(tried, next)
					asking, addr = false, next
					continue
				}
			}
			if t.reused && cl.retry && !fresh && ctx.Err() == nil {
				// A pooled connection failed under the command: once
				// more, on a new one.
				fresh = true
				continue
			}
			return nil, withContext(ctx, err)
		}
		e, ok := v.(*Error)
		if !ok || redirects >= maxRedirects {
			return v, nil
		}
		prefix := e.Prefix()
		if prefix != "MOVED" && prefix != "ASK" {
			return v, nil
		}
		slot, to, ok := redirect(e, addr)
		if !ok {
			return v, nil
		}
		redirects++
		asking = prefix == "ASK"
		if !asking {
			c.learn(slot, to)
		}
		addr = to
	}
}

// withContext adds context.DeadlineExceeded to the chain of an I/O timeout
// at ctx's deadline.
func withContext(ctx context.Context, err error) error {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return fmt.Errorf("%w (%w)", err, context.DeadlineExceeded)
	}
	return err
}

// trip describes how a round trip went.
type trip struct {
	// reused is set when the connection came from the pool.
	reused bool
	// unreachable is set when no connection could be made: nothing was
	// sent.
	unreachable bool
}

// roundTrip sends cmd (after ASKING when asking) to addr and reads its
// reply.
func (c *Client) roundTrip(ctx context.Context, addr string, asking, fresh bool, cmd []byte) (any, trip, error) {
	cn, t, err := c.get(ctx, addr, fresh)
	if err != nil {
		return nil, t, err
	}
	b, n := cmd, 1
	if asking {
		b = append(append(make([]byte, 0, len(askingCmd)+len(cmd)), askingCmd...), cmd...)
		n = 2
	}
	v, err := cn.exchange(c.deadline(ctx), b, n, c.opts.MaxReplyBytes)
	if err != nil {
		c.discard(cn)
		return nil, t, err
	}
	c.put(cn)
	return v, t, nil
}

var askingCmd = []byte("*1\r\n$6\r\nASKING\r\n")

// deadline returns the deadline of one command.
func (c *Client) deadline(ctx context.Context) time.Time {
	d := time.Now().Add(c.opts.Timeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		return cd
	}
	return d
}

// get returns a connection to addr: a pooled one unless fresh is set, else
// a new one.
func (c *Client) get(ctx context.Context, addr string, fresh bool) (*conn, trip, error) {
	var t trip
	if err := c.acquire(ctx); err != nil {
		return nil, t, err
	}
	for {
		cn, err := c.takeIdle(addr, !fresh)
		if err != nil {
			c.release()
			return nil, t, err
		}
		if cn == nil {
			break
		}
		if time.Since(cn.idleSince) < checkAfter || cn.alive() {
			t.reused = true
			return cn, t, nil
		}
		_ = cn.nc.Close()
	}
	cn, err := c.dial(ctx, addr)
	if err != nil {
		c.release()
		t.unreachable = true
		return nil, t, err
	}
	return cn, t, nil
}

// acquire takes a connection slot, waiting at most Options.Timeout.
func (c *Client) acquire(ctx context.Context) error {
	select {
	case c.sem <- struct{}{}:
		return nil
	default:
	}
	timer := time.NewTimer(c.opts.Timeout)
	defer timer.Stop()
	select {
	case c.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("resp: waiting for a connection: %w", ctx.Err())
	case <-timer.C:
		return ErrPoolTimeout
	}
}

func (c *Client) release() { <-c.sem }

// takeIdle removes and returns the newest idle connection to addr, nil when
// there is none or take is false. It fails when the Client is closed.
func (c *Client) takeIdle(addr string, take bool) (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if !take {
		return nil, nil
	}
	for i := len(c.idle) - 1; i >= 0; i-- {
		cn := c.idle[i]
		if cn.addr != addr {
			continue
		}
		copy(c.idle[i:], c.idle[i+1:])
		c.idle[len(c.idle)-1] = nil
		c.idle = c.idle[:len(c.idle)-1]
		return cn, nil
	}
	return nil, nil
}

// put returns a healthy connection to the pool.
func (c *Client) put(cn *conn) {
	cn.idleSince = time.Now()
	c.mu.Lock()
	keep := !c.closed && len(c.idle) < c.opts.PoolSize
	if keep {
		c.idle = append(c.idle, cn)
	}
	c.mu.Unlock()
	if !keep {
		_ = cn.nc.Close()
	}
	c.release()
}

// discard closes a connection that failed.
func (c *Client) discard(cn *conn) {
	_ = cn.nc.Close()
	c.release()
}

// suspect makes the idle connections to addr be checked before their next
// use.
func (c *Client) suspect(addr string) {
	c.mu.Lock()
	for _, cn := range c.idle {
		if cn.addr == addr {
			cn.idleSince = time.Time{}
		}
	}
	c.mu.Unlock()
}

// route returns the node for cl: the one serving its key's slot, when
// known, else Options.Addr.
func (c *Client) route(cl call) string {
	if !cl.keyed {
		return c.opts.Addr
	}
	c.mu.Lock()
	n := len(c.slots)
	c.mu.Unlock()
	if n == 0 {
		return c.opts.Addr
	}
	s := Slot(cl.key)
	c.mu.Lock()
	addr, ok := c.slots[s]
	c.mu.Unlock()
	if !ok {
		return c.opts.Addr
	}
	return addr
}

// nextNode returns a node to ask when the nodes tried cannot be reached:
// Options.Addr, then Options.ClusterAddrs, then the nodes learned from
// redirects; "" when every one has been tried.
func (c *Client) nextNode(tried []string) string {
	isTried := func(a string) bool {
		for _, t := range tried {
			if t == a {
				return true
			}
		}
		return false
	}
	if !isTried(c.opts.Addr) {
		return c.opts.Addr
	}
	for _, a := range c.opts.ClusterAddrs {
		if !isTried(a) {
			return a
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.slots {
		if !isTried(a) {
			return a
		}
	}
	return ""
}

// learn records the node of a slot from a MOVED reply.
func (c *Client) learn(slot int, addr string) {
	c.mu.Lock()
	if addr == c.opts.Addr {
		delete(c.slots, slot)
	} else {
		c.slots[slot] = addr
	}
	c.mu.Unlock()
}

// forget drops every slot learned for addr, after an error there.
func (c *Client) forget(addr string) {
	c.mu.Lock()
	for s, a := range c.slots {
		if a == addr {
			delete(c.slots, s)
		}
	}
	c.mu.Unlock()
}

// redirect parses "MOVED <slot> <host:port>" or "ASK <slot> <host:port>";
// an empty host means the host of the node that replied.
func redirect(e *Error, from string) (int, string, bool) {
	f := strings.Fields(e.Message)
	if len(f) != 3 {
		return 0, "", false
	}
	slot, err := strconv.Atoi(f[1])
	if err != nil || slot < 0 || slot >= Slots {
		return 0, "", false
	}
	i := strings.LastIndexByte(f[2], ':')
	if i < 0 || i == len(f[2])-1 {
		return 0, "", false
	}
	host, port := f[2][:i], f[2][i+1:]
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		host, _, _ = net.SplitHostPort(from)
	}
	return slot, net.JoinHostPort(host, port), true
}
