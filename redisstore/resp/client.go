package resp

import (
	"context"
	"errors"
	"fmt"
	"os"
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
	// ErrRedirect reports a MOVED or ASK reply that was not followed: from
	// a server that is not a Cluster node, or naming a node that the
	// Cluster's slot map does not announce, even once loaded again. The
	// reply, an *Error, is in the chain too.
	ErrRedirect = errors.New("resp: redirect refused")
)

// maxRedirects bounds the MOVED and ASK redirects one call follows.
const maxRedirects = 3

// Client is a RESP2 client of one Redis server or Redis Cluster, safe for
// concurrent use. It keeps a pool of connections: at most Options.PoolSize
// in use at once, and as many idle ones, reused newest first and closed
// after Options.MaxIdleTime unused. Any I/O or protocol error discards the
// connection it happened on, and a later call dials again, so the Client
// heals by itself after a Redis restart or failover.
//
// On its first call the Client asks Options.Addr, before the call's own
// command, for the Cluster's slot map (CLUSTER SLOTS); later loads run in
// the background. A standalone server answers that
// it has no Cluster support, and from then on every command goes to it
// with no further question. In a Cluster every command is routed by the
// slot of its key to the slot's master in the map (commands must touch one
// slot); MOVED and ASK redirects are followed (ASKING before the retried
// command), a MOVED overriding the map for its slot until the map, which
// it makes stale, is loaded again. A redirect is followed only in a
// Cluster, and only to a node its slot map announces: one naming another
// node has the map loaded again at once, and is followed if the new map
// announces the node; otherwise, and always from a standalone server, the
// call fails with ErrRedirect and the node is not contacted, so that the
// password is only ever sent to the configured nodes and those the
// Cluster announced. An error or timeout on a node marks it
// failing for a while: its idle connections are closed, and the map is
// loaded again, at most every 200 ms, from a node that is not failing
// (Options.Addr, Options.ClusterAddrs or a node of the last map), so that
// the promotion of a replica is followed even when the old master still
// accepts connections but never answers. A map ten seconds old is also
// loaded again. A node that cannot be reached is left for another, the
// command not having been sent: Options.Addr, Options.ClusterAddrs, then
// the nodes of the map, those not failing first, whose MOVED replies lead
// to the slot's owner. When another node could take the command, a dial
// gets at most half of what is left of the command's time, and a node
// that could not be reached is not dialled again in the same call.
//
// An idle connection is checked for a close by the server before its
// reuse when it has been idle for a second, and an error on a node closes
// its other idle connections, so that a call after a restart rarely meets
// a dead connection. The Client never resends a command it
// may have sent, except for the stores' commands that are safe to repeat
// (a nonce check, an idempotency Claim or Renew, PING): those are sent
// once more, on a new connection to the slot's node as known by then, when
// a pooled connection fails under them.
type Client struct {
	opts Options

	// slotMu guards inUse, the connections in use, at most
	// Options.PoolSize, and waiters, the calls waiting for one, first
	// come first.
	slotMu  sync.Mutex
	inUse   int
	waiters []chan error

	// loadMu is held by the slot map load under way.
	loadMu sync.Mutex

	mu     sync.Mutex
	idle   []*conn // longest idle first
	closed bool

	// The topology, see cluster.go.
	mode   int
	ranges []slotRange // the slot map, sorted by first slot
	nodes  []string    // every node of the slot map, masters first
	// moved holds the nodes named by MOVED replies since the map was
	// loaded, by slot.
	moved map[int]string
	// failing holds when nodes last failed, until they answer again.
	failing  map[string]time.Time
	loadedAt time.Time // when the map was loaded
	lastLoad time.Time // when the last load started
	loading  bool      // a load is under way or waits for loadMu
	stale    bool      // a MOVED or an error since the last load started
	loads    int       // loads started, to vary the node asked first

	// master is the master the Sentinels named (Sentinel mode), "" until
	// one did or after it refused a command as a replica.
	master string
}

// New returns a Client for o. It connects lazily: the first call dials.
func New(o Options) (*Client, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Client{
		opts:    o,
		moved:   map[int]string{},
		failing: map[string]time.Time{},
	}, nil
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
// []byte, int, int32, int64, uint, uint32, uint64, float64, bool (sent as
// "1" or "0"), *string, *int64 or *uint64; any other type is an error and
// nothing is sent. Replies decode to:
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

// call is one command to run, or several in one round trip.
type call struct {
	args []any
	// pipe holds the commands of a pipeline, in place of args; they share
	// the slot of key.
	pipe [][]any
	// key routes the command to its Cluster slot when keyed is set.
	key   string
	keyed bool
	// retry marks a command that may run twice with the same outcome.
	retry bool
	// limit bounds the reply in place of Options.MaxReplyBytes when set.
	limit int64
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
// *Error.
func (c *Client) exec(ctx context.Context, cl call) (any, error) {
	if len(cl.args) == 0 {
		return nil, errors.New("resp: empty command")
	}
	vs, err := c.execAll(ctx, cl)
	if err != nil {
		return nil, err
	}
	return vs[0], nil
}

// execAll runs cl and returns the replies of its commands (one, or those of
// its pipeline), error replies as values of type *Error.
// encodeCommands returns the commands of cl in RESP.
func encodeCommands(cl call) ([][]byte, error) {
	cmds := cl.pipe
	if cmds == nil {
		cmds = [][]any{cl.args}
	}
	encoded := make([][]byte, len(cmds))
	for i, a := range cmds {
		if len(a) == 0 {
			return nil, errors.New("resp: empty command")
		}
		b, err := appendCommand(nil, a)
		if err != nil {
			return nil, err
		}
		encoded[i] = b
	}
	return encoded, nil
}

// redirectReply returns the MOVED or ASK error of a reply, and which of
// the two it is, or nil. The commands of one call share a slot: a redirect
// of the first is one of them all.
func redirectReply(vs []any) (*Error, string) {
	e, ok := vs[0].(*Error)
	if !ok {
		return nil, ""
	}
	if p := e.Prefix(); p == "MOVED" || p == "ASK" {
		return e, p
	}
	return nil, ""
}

// replyLimit bounds the replies of cl: its own limit, else the client's.
func (c *Client) replyLimit(cl call) int64 {
	if cl.limit > 0 {
		return cl.limit
	}
	return c.opts.MaxReplyBytes
}

func (c *Client) execAll(ctx context.Context, cl call) ([]any, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("resp: %w", err)
	}
	encoded, err := encodeCommands(cl)
	if err != nil {
		return nil, err
	}
	addr := c.route(cl)
	if addr == "" {
		return nil, errNoMaster
	}
	asking, fresh, resent := false, false, false
	// tried holds the nodes this call was sent or redirected to; down,
	// those of them it could not reach, with their errors.
	tried := []string{addr}
	var down []string
	var downErrs []error
	redirects := 0
	limit := c.replyLimit(cl)
	for {
		sent := time.Now()
		vs, t, err := c.roundTrip(ctx, addr, asking, fresh, encoded, limit)
		if err != nil {
			if t.failed {
				c.fail(addr)
			}
			if t.unreachable {
				down = append(down, addr)
				downErrs = append(downErrs, err)
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
				// more, on a new one, to the slot's node as known now
				// (the map may have been loaded again since).
				fresh = true
				if !asking {
					if next := c.route(cl); !contains(down, next) {
						addr = next
					}
				}
				if !contains(tried, addr) {
					tried = append(tried, addr)
				}
				continue
			}
			return nil, withContext(ctx, err)
		}
		if c.opts.MasterName != "" && demoted(vs) && !resent {
			// Sentinel made the master a replica: the command did not
			// run, so it goes once more, to the master named now.
			c.lostMaster(addr)
			next := c.route(cl)
			if next == "" || next == addr {
				return vs, nil
			}
			addr, resent, fresh = next, true, false
			tried = append(tried, next)
			continue
		}
		e, prefix := redirectReply(vs)
		if e == nil || redirects >= maxRedirects {
			return vs, nil
		}
		slot, to, ok := redirect(e, addr)
		if !ok {
			return vs, nil
		}
		if err := c.trustRedirect(ctx, addr, to, sent); err != nil {
			return nil, fmt.Errorf("%w: %w", err, e)
		}
		redirects++
		asking = prefix == "ASK"
		if !asking {
			c.learn(slot, to)
		}
		for i, a := range down {
			if a == to {
				// The slot's node could not be reached a moment ago.
				return nil, withContext(ctx, downErrs[i])
			}
		}
		if !contains(tried, to) {
			tried = append(tried, to)
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
	// failed is set when the error came from the node or the network: a
	// dial, a write or a read that failed or timed out, not the pool, nor
	// a reply over the limits.
	failed bool
}

// roundTrip sends cmds (each after ASKING when asking) to addr and reads
// their replies, each of at most limit bytes (see Options.MaxReplyBytes).
func (c *Client) roundTrip(ctx context.Context, addr string, asking, fresh bool, cmds [][]byte, limit int64) ([]any, trip, error) {
	cn, t, err := c.get(ctx, addr, fresh)
	if err != nil {
		return nil, t, err
	}
	var b []byte
	if len(cmds) == 1 && !asking {
		b = cmds[0]
	} else {
		for _, cmd := range cmds {
			if asking {
				b = append(b, askingCmd...)
			}
			b = append(b, cmd...)
		}
	}
	vs, err := cn.exchangeAll(c.deadline(ctx), b, len(cmds), asking, limit)
	if err != nil {
		c.discard(cn)
		t.failed = !errors.Is(err, ErrProtocol)
		return nil, t, err
	}
	c.put(cn)
	return vs, t, nil
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
	cn, err := c.dial(ctx, addr, c.dialLimit(ctx))
	if err != nil {
		c.release()
		t.unreachable = true
		t.failed = true
		return nil, t, err
	}
	return cn, t, nil
}

// dialLimit returns how long a dial may take: Options.DialTimeout, and at
// most half of what is left of the command's time when another node could
// take it.
func (c *Client) dialLimit(ctx context.Context) time.Duration {
	d := c.opts.DialTimeout
	c.mu.Lock()
	share := c.mode == modeCluster || c.mode == modeUnknown && len(c.opts.ClusterAddrs) > 0
	c.mu.Unlock()
	if share {
		if half := time.Until(c.deadline(ctx)) / 2; half < d {
			d = half
		}
	}
	return d
}

// acquire takes a connection slot, waiting at most Options.Timeout, or
// until ctx is done, for one to be released; waiters are served in turn.
//
// No select statement: the Yaegi interpreter, which runs this package in
// the Traefik plugin, keeps a select's cases in the statement itself,
// shared by every goroutine running it, so that concurrent calls would
// wait on each other's channels. A waiter receives on a channel of its own,
// which release, the timer or ctx fills once.
func (c *Client) acquire(ctx context.Context) error {
	c.slotMu.Lock()
	if c.inUse < c.opts.PoolSize {
		c.inUse++
		c.slotMu.Unlock()
		return nil
	}
	w := make(chan error, 1)
	c.waiters = append(c.waiters, w)
	c.slotMu.Unlock()
	timer := time.AfterFunc(c.opts.Timeout, func() { c.abandon(w, ErrPoolTimeout) })
	stop := context.AfterFunc(ctx, func() { c.abandon(w, fmt.Errorf("resp: waiting for a connection: %w", ctx.Err())) })
	err := <-w
	timer.Stop()
	stop()
	return err
}

// abandon ends the wait of w with err, unless release has handed it a slot
// already.
func (c *Client) abandon(w chan error, err error) {
	c.slotMu.Lock()
	for i, x := range c.waiters {
		if x == w {
			c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
			c.slotMu.Unlock()
			w <- err
			return
		}
	}
	c.slotMu.Unlock()
}

// release hands the slot of a finished call to the first waiter, or frees
// it.
func (c *Client) release() {
	c.slotMu.Lock()
	if len(c.waiters) > 0 {
		w := c.waiters[0]
		c.waiters[0] = nil
		c.waiters = c.waiters[1:]
		c.slotMu.Unlock()
		w <- nil
		return
	}
	c.inUse--
	c.slotMu.Unlock()
}

// takeIdle removes and returns the newest idle connection to addr, nil when
// there is none or take is false. It fails when the Client is closed.
func (c *Client) takeIdle(addr string, take bool) (*conn, error) {
	now := time.Now()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	old := c.expire(now)
	var cn *conn
	for i := len(c.idle) - 1; take && i >= 0; i-- {
		if c.idle[i].addr != addr {
			continue
		}
		cn = c.idle[i]
		copy(c.idle[i:], c.idle[i+1:])
		c.idle[len(c.idle)-1] = nil
		c.idle = c.idle[:len(c.idle)-1]
		break
	}
	c.mu.Unlock()
	closeAll(old)
	return cn, nil
}

// put returns a healthy connection to the pool, its node no longer
// failing. When PoolSize connections are idle already, the one idle the
// longest is closed: likely to a node no longer used.
func (c *Client) put(cn *conn) {
	now := time.Now()
	c.mu.Lock()
	var drop []*conn
	if c.closed {
		drop = append(drop, cn)
	} else {
		if len(c.failing) > 0 {
			delete(c.failing, cn.addr)
		}
		cn.idleSince = now
		c.idle = append(c.idle, cn)
		drop = c.expire(now)
		if len(c.idle) > c.opts.PoolSize {
			drop = append(drop, c.idle[0])
			copy(c.idle, c.idle[1:])
			c.idle[len(c.idle)-1] = nil
			c.idle = c.idle[:len(c.idle)-1]
		}
	}
	c.mu.Unlock()
	closeAll(drop)
	c.release()
}

// discard closes a connection that failed.
func (c *Client) discard(cn *conn) {
	_ = cn.nc.Close()
	c.release()
}

// expire removes and returns the idle connections unused for
// Options.MaxIdleTime. c.mu is held.
func (c *Client) expire(now time.Time) []*conn {
	n := 0
	for n < len(c.idle) && now.Sub(c.idle[n].idleSince) >= c.opts.MaxIdleTime {
		n++
	}
	if n == 0 {
		return nil
	}
	old := append([]*conn(nil), c.idle[:n]...)
	m := copy(c.idle, c.idle[n:])
	for i := m; i < len(c.idle); i++ {
		c.idle[i] = nil
	}
	c.idle = c.idle[:m]
	return old
}

// removeIdle removes and returns the idle connections drop selects. c.mu
// is held.
func (c *Client) removeIdle(drop func(*conn) bool) []*conn {
	var out []*conn
	kept := c.idle[:0]
	for _, cn := range c.idle {
		if drop(cn) {
			out = append(out, cn)
		} else {
			kept = append(kept, cn)
		}
	}
	for i := len(kept); i < len(c.idle); i++ {
		c.idle[i] = nil
	}
	c.idle = kept
	return out
}

func closeAll(conns []*conn) {
	for _, cn := range conns {
		_ = cn.nc.Close()
	}
}
