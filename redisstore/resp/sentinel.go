package resp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// Sentinel mode (Options.MasterName): the Sentinels name the master and
// every command goes to it. They are asked before the first command, again
// in the background when the master fails, answers READONLY (Sentinel
// demoted it), or every reloadAfter, and at once by a call that finds no
// master known. Sentinel connections carry no AUTH or SELECT (the
// Sentinels of the binary's go-redis client are asked without either) and
// are not pooled: one is dialled for each question.

// errNoMaster reports that no Sentinel named the master yet.
var errNoMaster = errors.New("resp: no Sentinel named the master")

// sentinelRoute is route in Sentinel mode: the master's address, the
// Sentinels asked first, in the calling goroutine, when none is known. ""
// when none answered.
func (c *Client) sentinelRoute() string {
	now := time.Now()
	c.mu.Lock()
	if c.master == "" && !c.closed {
		c.mu.Unlock()
		c.askNow()
		c.mu.Lock()
	} else if c.stale || now.Sub(c.loadedAt) >= reloadAfter {
		c.startReload(now)
	}
	addr := c.master
	c.mu.Unlock()
	return addr
}

// askNow asks the Sentinels for the master unless one is known by the time
// no other question is under way, or the last was asked less than
// reloadGap ago: calls made while no master is known wait for one answer
// rather than each asking.
func (c *Client) askNow() {
	c.loadMu.Lock()
	defer c.loadMu.Unlock()
	c.mu.Lock()
	if c.master != "" || c.closed || (!c.lastLoad.IsZero() && time.Since(c.lastLoad) < reloadGap) {
		c.mu.Unlock()
		return
	}
	c.loading = true
	c.stale = false
	c.lastLoad = time.Now()
	c.mu.Unlock()
	c.loadMaster()
}

// loadMaster asks the Sentinels, starting from another one each time, for
// the master's address until one names it, and routes every command there
// from then on. When none does, the master known is kept and the next call
// or error asks again. c.loadMu is held.
func (c *Client) loadMaster() {
	c.mu.Lock()
	sentinels := c.opts.Sentinels
	first := c.loads
	c.loads++
	c.mu.Unlock()

	addr := ""
	for i := range sentinels {
		a, err := c.askSentinel(sentinels[(first+i)%len(sentinels)])
		if err == nil && a != "" {
			addr = a
			break
		}
	}

	c.mu.Lock()
	c.loading = false
	var drop []*conn
	if addr == "" {
		c.stale = true
	} else {
		if old := c.master; old != "" && old != addr {
			// The old master is a replica now, or gone.
			drop = c.removeIdle(func(cn *conn) bool { return cn.addr == old })
		}
		c.master = addr
		c.loadedAt = time.Now()
		delete(c.failing, addr)
	}
	c.mu.Unlock()
	closeAll(drop)
}

// askSentinel asks the Sentinel at addr for the master's address
// (SENTINEL GET-MASTER-ADDR-BY-NAME) within Options.Timeout; "" when it
// knows no master of that name.
func (c *Client) askSentinel(addr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	cn, err := c.connect(ctx, addr)
	if err != nil {
		return "", err
	}
	defer func() { _ = cn.nc.Close() }()
	cmd, err := appendCommand(nil, []any{"SENTINEL", "GET-MASTER-ADDR-BY-NAME", c.opts.MasterName})
	if err != nil {
		return "", err
	}
	deadline, _ := ctx.Deadline()
	v, err := cn.exchange(deadline, cmd, 1, c.opts.MaxReplyBytes)
	if err != nil {
		return "", err
	}
	if e, ok := v.(*Error); ok {
		return "", fmt.Errorf("resp: Sentinel %s: %w", addr, e)
	}
	if v == nil {
		return "", nil
	}
	hp, ok := v.([]any)
	if !ok || len(hp) != 2 {
		return "", fmt.Errorf("resp: Sentinel %s: %w: master address %v", addr, ErrProtocol, v)
	}
	host, ok1 := hp[0].(string)
	port, ok2 := hp[1].(string)
	if !ok1 || !ok2 || host == "" || port == "" {
		return "", fmt.Errorf("resp: Sentinel %s: %w: master address %v", addr, ErrProtocol, v)
	}
	return net.JoinHostPort(host, port), nil
}

// demoted reports a reply of a master that Sentinel made a replica: it
// refuses writes with READONLY, having run nothing.
func demoted(vs []any) bool {
	e, ok := vs[0].(*Error)
	return ok && e.Prefix() == "READONLY"
}

// lostMaster records that the master at addr refused a command as a
// replica: its idle connections are closed and the Sentinels asked again
// at once.
func (c *Client) lostMaster(addr string) {
	c.mu.Lock()
	if c.master == addr {
		c.master = ""
	}
	drop := c.removeIdle(func(cn *conn) bool { return cn.addr == addr })
	c.mu.Unlock()
	closeAll(drop)
}
