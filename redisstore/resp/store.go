package resp

import (
	"context"
	"fmt"

	"github.com/replayguard/replayguard/redisstore"
)

// The calls of redisstore.Client, with which the stores of package
// redisstore run on a Client.
var (
	_ redisstore.Client     = (*Client)(nil)
	_ redisstore.Standalone = (*Client)(nil)
)

// Standalone implements redisstore.Standalone: true once the Client has
// found Options.Addr to be a standalone server, false while it does not
// know yet and in a Cluster.
func (c *Client) Standalone() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mode == modeSingle
}

// Process sends one command and returns its reply (see Do for the
// types), an error reply as an error of type *Error. It is sent twice only
// when a pooled connection fails under it and cmd is not Once; its reply is
// bounded by cmd.MaxReply when set, else by Options.MaxReplyBytes.
func (c *Client) Process(ctx context.Context, cmd redisstore.Cmd) (any, error) {
	cl := call{args: cmd.Args, retry: !cmd.Once, limit: cmd.MaxReply}
	cl.key, cl.keyed = commandKey(cmd.Args)
	return reply(c.exec(ctx, cl))
}

// ProcessPipeline sends cmds in one round trip to the node of the first
// one's key (they must share its slot) and returns their replies; when one
// is an error reply, it returns that error. The pipeline is sent twice
// only when a pooled connection fails under it and no command is Once.
func (c *Client) ProcessPipeline(ctx context.Context, cmds []redisstore.Cmd) ([]any, error) {
	if len(cmds) == 0 {
		return nil, nil
	}
	cl := call{pipe: make([][]any, len(cmds)), retry: true}
	for i, cmd := range cmds {
		cl.pipe[i] = cmd.Args
		if cmd.Once {
			cl.retry = false
		}
		if cmd.MaxReply > cl.limit {
			cl.limit = cmd.MaxReply
		}
	}
	cl.key, cl.keyed = commandKey(cmds[0].Args)
	vs, err := c.execAll(ctx, cl)
	if err != nil {
		return nil, err
	}
	for _, v := range vs {
		if e, ok := v.(*Error); ok {
			return nil, e
		}
	}
	return vs, nil
}

// RunScript runs s on keys with cmd.Args as its arguments (typed as for
// Do): EVALSHA, and EVAL (which also loads the script) when the server
// answers NOSCRIPT. In a Cluster it is routed by keys[0]; every key must
// share its slot. The reply decodes as for Do, an error reply (a Lua error
// included) as an error of type *Error.
func (c *Client) RunScript(ctx context.Context, s *redisstore.Script, keys []string, cmd redisstore.Cmd) (any, error) {
	cl := call{args: s.EvalSHA(keys, cmd.Args), retry: !cmd.Once, limit: cmd.MaxReply}
	if len(keys) > 0 {
		cl.key, cl.keyed = keys[0], true
	}
	v, err := c.exec(ctx, cl)
	if e, ok := v.(*Error); ok && err == nil && e.Prefix() == "NOSCRIPT" {
		cl.args = s.Eval(cl.args)
		v, err = c.exec(ctx, cl)
	}
	return reply(v, err)
}

// ConfigGet runs CONFIG GET parameter on Options.Addr, or on every master
// of a Cluster, and returns the values.
func (c *Client) ConfigGet(ctx context.Context, parameter string) ([]string, error) {
	cmd, err := appendCommand(nil, []any{"CONFIG", "GET", parameter})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, addr := range c.masters() {
		v, err := c.onNode(ctx, addr, cmd, c.opts.MaxReplyBytes)
		if err != nil {
			return nil, withContext(ctx, err)
		}
		if e, ok := v.(*Error); ok {
			return nil, e
		}
		pair, ok := v.([]any)
		if !ok || len(pair) != 2 {
			return nil, fmt.Errorf("resp: CONFIG GET %s on %s: no value", parameter, addr)
		}
		s, ok := pair[1].(string)
		if !ok {
			return nil, fmt.Errorf("resp: CONFIG GET %s on %s: %w: value of type %T", parameter, addr, ErrProtocol, pair[1])
		}
		out = append(out, s)
	}
	return out, nil
}
