package resp

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// What the Client knows of the server's topology.
const (
	// modeUnknown: no slot map yet. Commands go to Options.Addr while
	// every call may start a load of the map; a MOVED or ASK waits for
	// one.
	modeUnknown = iota
	// modeSingle: Options.Addr is a standalone server ("cluster support
	// disabled"), or refuses CLUSTER SLOTS. Every command goes there; a
	// MOVED or ASK is refused, and only starts another load.
	modeSingle
	// modeCluster: commands are routed by the slot map.
	modeCluster
)

// Slot map loads.
const (
	// reloadGap is the least time between two loads of the slot map.
	reloadGap = 200 * time.Millisecond
	// reloadAfter is the age at which a slot map is loaded again on the
	// next call, even without a MOVED or an error.
	reloadAfter = 10 * time.Second
	// failFor is how long an error marks a node failing, unless it
	// answers again sooner.
	failFor = 15 * time.Second
)

// slotRange is a range of slots and the master serving it.
type slotRange struct {
	first, last int
	addr        string
}

var clusterSlotsCmd = []byte("*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n")

// route returns the node to send cl to: in a Cluster the master of its
// key's slot (a MOVED since the last load overriding the map), else
// Options.Addr or, when that is failing, a node that is not (see anyNode).
// It starts a load of the slot map when one is due.
func (c *Client) route(cl call) string {
	if c.opts.MasterName != "" {
		return c.sentinelRoute()
	}
	slot := -1
	if cl.keyed {
		slot = Slot(cl.key)
	}
	now := time.Now()
	c.mu.Lock()
	if c.mode == modeUnknown && c.lastLoad.IsZero() && !c.loading && !c.closed {
		// The first load runs in the calling goroutine: one round trip
		// once, and no interpreted code (the Traefik plugin) runs for the
		// first time in two goroutines at once, which races inside Yaegi.
		c.loading = true
		c.stale = false
		c.lastLoad = now
		c.mu.Unlock()
		c.reload()
		now = time.Now()
		c.mu.Lock()
	} else if c.mode != modeSingle && (c.mode == modeUnknown || c.stale || now.Sub(c.loadedAt) >= reloadAfter) {
		c.startReload(now)
	}
	addr := ""
	if slot >= 0 {
		if len(c.moved) > 0 {
			addr = c.moved[slot]
		}
		if addr == "" && c.mode == modeCluster {
			addr = c.owner(slot)
		}
	}
	if addr == "" {
		addr = c.anyNode(now)
	}
	c.mu.Unlock()
	return addr
}

// owner returns the master of slot in the map, "" when no range holds it.
// c.mu is held.
func (c *Client) owner(slot int) string {
	lo, hi := 0, len(c.ranges)
	for lo < hi {
		mid := (lo + hi) / 2
		if c.ranges[mid].last < slot {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo < len(c.ranges) && c.ranges[lo].first <= slot {
		return c.ranges[lo].addr
	}
	return ""
}

// anyNode returns the node for a command without a key: Options.Addr,
// unless it is failing in a Cluster and another node is not. c.mu is
// held.
func (c *Client) anyNode(now time.Time) string {
	if c.mode == modeSingle || !c.isFailing(c.opts.Addr, now) {
		return c.opts.Addr
	}
	for _, a := range c.opts.ClusterAddrs {
		if !c.isFailing(a, now) {
			return a
		}
	}
	for _, a := range c.nodes {
		if !c.isFailing(a, now) {
			return a
		}
	}
	return c.opts.Addr
}

// isFailing reports whether addr failed within failFor and has not
// answered since. c.mu is held.
func (c *Client) isFailing(addr string, now time.Time) bool {
	if len(c.failing) == 0 {
		return false
	}
	at, ok := c.failing[addr]
	return ok && now.Sub(at) < failFor
}

// nextNode returns a node to ask when the nodes tried cannot be reached:
// Options.Addr, then Options.ClusterAddrs, then the nodes of the slot
// map, those not failing first; "" when every one has been tried.
func (c *Client) nextNode(tried []string) string {
	if c.opts.MasterName != "" {
		return "" // the master alone takes commands
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	cands := c.known()
	for pass := 0; pass < 2; pass++ {
		for _, a := range cands {
			if !contains(tried, a) && c.isFailing(a, now) == (pass == 1) {
				return a
			}
		}
	}
	return ""
}

// known returns Options.Addr, Options.ClusterAddrs and the nodes of the
// slot map, each once. c.mu is held.
func (c *Client) known() []string {
	out := make([]string, 0, 1+len(c.opts.ClusterAddrs)+len(c.nodes))
	out = append(out, c.opts.Addr)
	for _, a := range c.opts.ClusterAddrs {
		if !contains(out, a) {
			out = append(out, a)
		}
	}
	for _, a := range c.nodes {
		if !contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// trustRedirect decides whether a MOVED or ASK reply from the node at from
// may be followed to the node at to, the command having been sent at
// sent: only in a Cluster, and only to a node its slot map announces.
// When the map in force does not announce to, it is loaded again in the
// calling goroutine (after any load under way, and no sooner than
// reloadGap after the last one started, within ctx's deadline), unless a
// map loaded since sent is in force already; the redirect is followed if
// that map announces the node. A standalone server's redirect is never
// followed: it only has the map asked for again, in the background, in
// case the server has become a Cluster node. The error wraps ErrRedirect.
func (c *Client) trustRedirect(ctx context.Context, from, to string, sent time.Time) error {
	c.mu.Lock()
	mode := c.mode
	ok := c.announces(to)
	if mode == modeSingle {
		c.stale = true
		c.startReload(time.Now())
	}
	c.mu.Unlock()
	if ok {
		return nil
	}
	if mode == modeSingle {
		return fmt.Errorf("%w: %s is not a Cluster node", ErrRedirect, from)
	}
	refused := fmt.Errorf("%w: %s names %s, a node absent from the Cluster's slot map", ErrRedirect, from, to)
	c.loadMu.Lock()
	defer c.loadMu.Unlock()
	c.mu.Lock()
	ok = c.announces(to)
	fresh := c.mode == modeCluster && c.loadedAt.After(sent)
	wait := reloadGap - time.Since(c.lastLoad)
	closed := c.closed
	c.mu.Unlock()
	switch {
	case ok:
		return nil
	case fresh || closed:
		return refused
	}
	if wait > 0 {
		if d, has := ctx.Deadline(); has && time.Until(d) < wait {
			return refused
		}
		time.Sleep(wait)
	}
	c.mu.Lock()
	c.loading = true
	c.stale = false
	c.lastLoad = time.Now()
	c.mu.Unlock()
	c.load()
	c.mu.Lock()
	ok = c.announces(to)
	c.mu.Unlock()
	if !ok {
		return refused
	}
	return nil
}

// announces reports whether the slot map in force names addr, as a master
// or a replica. c.mu is held.
func (c *Client) announces(addr string) bool {
	return c.mode == modeCluster && contains(c.nodes, addr)
}

// learn records the node of a slot from a MOVED reply until the next load
// of the slot map, and starts that load.
func (c *Client) learn(slot int, addr string) {
	now := time.Now()
	c.mu.Lock()
	c.moved[slot] = addr
	c.stale = true
	c.startReload(now)
	c.mu.Unlock()
}

// fail records an error on the way to addr or on a connection to it: the
// node is marked failing, its idle connections are closed, a MOVED that
// named it is forgotten, and in a Cluster the slot map is loaded again.
func (c *Client) fail(addr string) {
	now := time.Now()
	c.mu.Lock()
	c.failing[addr] = now
	for s, a := range c.moved {
		if a == addr {
			delete(c.moved, s)
		}
	}
	drop := c.removeIdle(func(cn *conn) bool { return cn.addr == addr })
	if c.mode != modeSingle {
		c.stale = true
		c.startReload(now)
	}
	c.mu.Unlock()
	closeAll(drop)
}

// startReload starts loading the slot map in the background unless a load
// is under way or started less than reloadGap ago. c.mu is held.
func (c *Client) startReload(now time.Time) {
	if c.loading || c.closed || now.Sub(c.lastLoad) < reloadGap {
		return
	}
	c.loading = true
	c.stale = false
	c.lastLoad = now
	go c.reload()
}

// reload loads the slot map (see load) once no other load is under way.
func (c *Client) reload() {
	c.loadMu.Lock()
	defer c.loadMu.Unlock()
	c.load()
}

// load asks the known nodes, those not failing first, for the slot map
// with CLUSTER SLOTS until one answers, and installs it. A server without
// Cluster support, or one refusing the command, makes the Client send
// everything to Options.Addr. When no node answers, the map in force is
// kept and the next call or error tries again. c.loadMu is held.
func (c *Client) load() {
	if c.opts.MasterName != "" {
		c.loadMaster()
		return
	}
	now := time.Now()
	c.mu.Lock()
	cands := c.known()
	var ok, failing []string
	for _, a := range cands {
		if c.isFailing(a, now) {
			failing = append(failing, a)
		} else {
			ok = append(ok, a)
		}
	}
	// Start from another node each time, so that one node's stale view is
	// not asked again and again.
	order := make([]string, 0, len(cands))
	for i := range ok {
		order = append(order, ok[(i+c.loads)%len(ok)])
	}
	order = append(order, failing...)
	c.loads++
	c.mu.Unlock()

	mode := modeUnknown
	var ranges []slotRange
	var nodes []string
	for _, addr := range order {
		r, n, refused, err := c.loadFrom(addr)
		if err != nil {
			continue
		}
		if refused == nil {
			mode = modeCluster
			ranges = r
			nodes = n
			break
		}
		if !transient(refused) {
			mode = modeSingle
			break
		}
	}

	now = time.Now()
	c.mu.Lock()
	c.loading = false
	var drop []*conn
	switch mode {
	case modeCluster:
		c.mode = modeCluster
		c.ranges = ranges
		c.nodes = nodes
		c.loadedAt = now
		c.moved = map[int]string{}
		for a, at := range c.failing {
			if now.Sub(at) >= failFor {
				delete(c.failing, a)
			}
		}
		// Idle connections to nodes no longer in the map are of no use.
		keep := c.known()
		drop = c.removeIdle(func(cn *conn) bool { return !contains(keep, cn.addr) })
	case modeSingle:
		c.mode = modeSingle
		c.ranges = nil
		c.nodes = nil
	default:
		c.stale = true
	}
	c.mu.Unlock()
	closeAll(drop)
}

// transient reports an error reply to CLUSTER SLOTS that another node, or
// a later try, may not give.
func transient(e *Error) bool {
	switch e.Prefix() {
	case "LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN":
		return true
	}
	return false
}

// loadFrom runs CLUSTER SLOTS on addr within Options.Timeout. It returns
// the slot map, or the error reply, or the error that left it without
// either.
func (c *Client) loadFrom(addr string) ([]slotRange, []string, *Error, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	limit := c.opts.MaxReplyBytes
	if limit < slotsReplyBytes {
		limit = slotsReplyBytes
	}
	v, err := c.onNode(ctx, addr, clusterSlotsCmd, limit)
	if err != nil {
		return nil, nil, nil, err
	}
	if e, ok := v.(*Error); ok {
		return nil, nil, e, nil
	}
	ranges, nodes, err := parseSlots(v, addr)
	return ranges, nodes, nil, err
}

// onNode sends cmd to the node at addr, not to a key's slot, once more on
// a new connection when a pooled one fails, and returns its reply, an
// error reply as a value of type *Error.
func (c *Client) onNode(ctx context.Context, addr string, cmd []byte, limit int64) (any, error) {
	fresh := false
	for {
		vs, t, err := c.roundTrip(ctx, addr, false, fresh, [][]byte{cmd}, limit)
		if err != nil {
			if t.failed {
				c.fail(addr)
			}
			if t.reused && !fresh && ctx.Err() == nil {
				fresh = true
				continue
			}
			return nil, err
		}
		return vs[0], nil
	}
}

// masters returns the node of every master: those of the slot map in a
// Cluster, else Options.Addr. It loads the slot map first if none was.
func (c *Client) masters() []string {
	master := c.route(call{})
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.opts.MasterName != "" {
		return []string{master}
	}
	if c.mode != modeCluster {
		return []string{c.opts.Addr}
	}
	var out []string
	for _, r := range c.ranges {
		if !contains(out, r.addr) {
			out = append(out, r.addr)
		}
	}
	return out
}

// parseSlots decodes a CLUSTER SLOTS reply from the node at from: a range
// per row (first slot, last slot, master, replicas…), each node as (host,
// port, …), an empty host meaning from's. It returns the ranges sorted by
// their first slot, and every node named, masters first.
func parseSlots(v any, from string) ([]slotRange, []string, error) {
	rows, ok := v.([]any)
	if !ok {
		return nil, nil, fmt.Errorf("resp: CLUSTER SLOTS on %s: %w: reply of type %T", from, ErrProtocol, v)
	}
	var ranges []slotRange
	var masters, replicas []string
	for _, row := range rows {
		r, ok := row.([]any)
		if !ok || len(r) < 3 {
			return nil, nil, fmt.Errorf("resp: CLUSTER SLOTS on %s: %w: row %v", from, ErrProtocol, row)
		}
		first, ok1 := r[0].(int64)
		last, ok2 := r[1].(int64)
		if !ok1 || !ok2 || first < 0 || last < first || last >= Slots {
			return nil, nil, fmt.Errorf("resp: CLUSTER SLOTS on %s: %w: range %v-%v", from, ErrProtocol, r[0], r[1])
		}
		master, ok := nodeAddr(r[2], from)
		if !ok {
			continue // the master's endpoint is unknown
		}
		ranges = append(ranges, slotRange{first: int(first), last: int(last), addr: master})
		if !contains(masters, master) {
			masters = append(masters, master)
		}
		for _, n := range r[3:] {
			if a, ok := nodeAddr(n, from); ok && !contains(replicas, a) {
				replicas = append(replicas, a)
			}
		}
	}
	if len(ranges) == 0 {
		return nil, nil, fmt.Errorf("resp: CLUSTER SLOTS on %s: no slot is served", from)
	}
	// Insertion sort: a handful of ranges, and no sort package under
	// Yaegi's restrictions on generic code.
	for i := 1; i < len(ranges); i++ {
		for j := i; j > 0 && ranges[j].first < ranges[j-1].first; j-- {
			ranges[j], ranges[j-1] = ranges[j-1], ranges[j]
		}
	}
	nodes := masters
	for _, a := range replicas {
		if !contains(nodes, a) {
			nodes = append(nodes, a)
		}
	}
	return ranges, nodes, nil
}

// nodeAddr returns the host:port of a node in a CLUSTER SLOTS reply, false
// when its endpoint is unknown (NULL or "?").
func nodeAddr(v any, from string) (string, bool) {
	n, ok := v.([]any)
	if !ok || len(n) < 2 {
		return "", false
	}
	host, ok1 := n[0].(string)
	port, ok2 := n[1].(int64)
	if !ok1 || !ok2 || host == "?" || port <= 0 || port > 65535 {
		return "", false
	}
	if host == "" {
		host, _, _ = net.SplitHostPort(from)
	}
	return net.JoinHostPort(host, strconv.FormatInt(port, 10)), true
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
