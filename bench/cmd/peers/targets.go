package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// target is one of the proxies measured.
type target struct {
	name  string
	label string
	// logs states what the target logs while measured.
	logs string
	// goRuntime: a Go program, run with GODEBUG=gctrace=1.
	goRuntime bool
	// redis: its stores are in the run's redis-server, emptied before it
	// starts.
	redis bool
	// needs names the binary the target cannot run without: "caddy",
	// "nginx" or "redis".
	needs string
	// setup writes the target's configuration into dir and returns the
	// command that serves it and its configuration's text (for the
	// report); port is a free loopback port for the targets that cannot
	// listen on port 0.
	setup func(r *runner, dir string, port int) (argv []string, env []string, config string, err error)
	// ready returns the target's base URL once it serves, "" before.
	ready func(p *proc, port int) string
}

// baseline is the target every ratio is taken against.
const baseline = "bare"

var allTargets = []target{
	{
		name: "bare", label: "baseline: bare `httputil.ReverseProxy`, pooled (`bench/cmd/bareproxy`)", logs: "none", goRuntime: true,
		setup: func(r *runner, _ string, _ int) ([]string, []string, string, error) {
			return []string{r.binary("bareproxy"), "-upstream", r.upstream}, nil, "", nil
		},
		ready: stdoutURL,
	},
	{
		name: "caddy", label: "Caddy `reverse_proxy`", logs: "Caddy's default: no access log", goRuntime: true, needs: "caddy",
		setup: func(r *runner, dir string, port int) ([]string, []string, string, error) {
			return r.caddy(dir, port, "")
		},
		ready: portURL,
	},
	{
		name: "caddy-replayguard", label: "Caddy + `replayguard` directive, memory stores", logs: "Caddy's default: no access log", goRuntime: true, needs: "caddy",
		setup: func(r *runner, dir string, port int) ([]string, []string, string, error) {
			return r.caddy(dir, port, fmt.Sprintf(`replayguard {
		key %s %s
		nonce {
			store memory
		}
		idempotency {
			store memory
			memory_max_bytes 4GiB
		}
	}`, keyID, r.secret))
		},
		ready: portURL,
	},
	{
		name: "memory", label: "`replayguard serve`, memory stores", logs: "`log.access: false` (rejection lines only: none here)", goRuntime: true,
		setup: func(r *runner, dir string, _ int) ([]string, []string, string, error) {
			return r.serve(dir, "nonce: {store: memory}\nidempotency: {store: memory, memory_max_bytes: 4294967296}\nlog: {access: false}\n")
		},
		ready: serveURL,
	},
	{
		name: "memory-gogc200", label: "`replayguard serve`, memory stores, `GOGC=200` in its environment", logs: "`log.access: false`", goRuntime: true,
		setup: func(r *runner, dir string, _ int) ([]string, []string, string, error) {
			argv, _, cfg, err := r.serve(dir, "nonce: {store: memory}\nidempotency: {store: memory, memory_max_bytes: 4294967296}\nlog: {access: false}\n")
			return argv, []string{"GOGC=200"}, "GOGC=200\n" + cfg, err
		},
		ready: serveURL,
	},
	{
		name: "memory-noidem", label: "`replayguard serve`, memory stores, idempotency off", logs: "`log.access: false`", goRuntime: true,
		setup: func(r *runner, dir string, _ int) ([]string, []string, string, error) {
			return r.serve(dir, "nonce: {store: memory}\nidempotency: {enabled: false}\nlog: {access: false}\n")
		},
		ready: serveURL,
	},
	{
		name: "redis-exact", label: "`replayguard serve`, Redis, exact nonces", logs: "`log.access: false`", goRuntime: true, redis: true, needs: "redis",
		setup: func(r *runner, dir string, _ int) ([]string, []string, string, error) {
			return r.serve(dir, fmt.Sprintf("nonce: {store: redis, mode: exact}\nidempotency: {store: redis}\nredis: {addrs: [%q]}\nlog: {access: false}\n", r.redisAddr))
		},
		ready: serveURL,
	},
	{
		name: "redis-bloom", label: "`replayguard serve`, Redis, Bloom nonces", logs: "`log.access: false`", goRuntime: true, redis: true, needs: "redis",
		setup: func(r *runner, dir string, _ int) ([]string, []string, string, error) {
			return r.serve(dir, fmt.Sprintf("nonce: {store: redis, mode: bloom}\nidempotency: {store: redis}\nredis: {addrs: [%q]}\nlog: {access: false}\n", r.redisAddr))
		},
		ready: serveURL,
	},
	{
		name: "default", label: "`replayguard serve`, default configuration: disk store (fsync on), access log", goRuntime: true,
		logs: "default: `log.access: true`, a JSON line per request on stderr, written to a file",
		setup: func(r *runner, dir string, _ int) ([]string, []string, string, error) {
			return r.serve(dir, "")
		},
		ready: serveURL,
	},
	{
		name: "nginx", label: "nginx `proxy_pass` (reference, C)", logs: "`access_log off`, error log at warn", needs: "nginx",
		setup: func(r *runner, dir string, port int) ([]string, []string, string, error) {
			return r.nginxConfig(dir, port)
		},
		ready: portURL,
	},
}

func targetNames() []string {
	names := make([]string, len(allTargets))
	for i, t := range allTargets {
		names[i] = t.name
	}
	return names
}

func targetByName(name string) (target, bool) {
	for _, t := range allTargets {
		if t.name == name {
			return t, true
		}
	}
	return target{}, false
}

// keyID is the key the load is signed with.
const keyID = "load-client"

var (
	urlLine    = regexp.MustCompile(`(?m)^(http://\S+)$`)
	serveLine  = regexp.MustCompile(`"msg":"replayguard serving".*?"listen":"([^"]+)"`)
	serveLine2 = regexp.MustCompile(`"listen":"([^"]+)".*"msg":"replayguard serving"`)
)

// stdoutURL is the address a program printed on stdout.
func stdoutURL(p *proc, _ int) string { return firstMatch(p.stdout, urlLine) }

// portURL is the URL of port once something listens on it.
func portURL(_ *proc, port int) string {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if !listening(addr) {
		return ""
	}
	return "http://" + addr
}

// serveURL is the listen address `replayguard serve` logged once serving.
func serveURL(p *proc, _ int) string {
	addr := firstMatch(p.stderr, serveLine)
	if addr == "" {
		addr = firstMatch(p.stderr, serveLine2)
	}
	if addr == "" {
		return ""
	}
	return "http://" + addr
}

// serve writes a `replayguard serve` configuration: the listener, the
// upstream and the key, then extra. Without extra it is the binary's
// default configuration: the disk store in "replayguard.yaml.data" beside
// the file, the access log on.
func (r *runner) serve(dir, extra string) ([]string, []string, string, error) {
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\nupstream: %s\nkeys:\n  - id: %s\n    secrets: [\"%s\"]\n%s", r.upstream, keyID, r.secret, extra)
	path := filepath.Join(dir, "replayguard.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, nil, "", err
	}
	return []string{r.o.gateway, "serve", "--config", path}, nil, cfg, nil
}

// caddy writes a Caddyfile serving port with directive (if any) in front of
// reverse_proxy to the upstream. Caddy keeps its data and configuration in
// dir.
func (r *runner) caddy(dir string, port int, directive string) ([]string, []string, string, error) {
	site := "\treverse_proxy " + strings.TrimPrefix(r.upstream, "http://") + "\n"
	if directive != "" {
		site = "\t" + directive + "\n" + site
	}
	cfg := fmt.Sprintf("{\n\tadmin off\n\tauto_https off\n\tpersist_config off\n}\n\nhttp://127.0.0.1:%d {\n%s}\n", port, site)
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, nil, "", err
	}
	env := []string{"HOME=" + dir, "XDG_DATA_HOME=" + filepath.Join(dir, "data"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "config")}
	return []string{r.binary("caddy"), "run", "--config", path, "--adapter", "caddyfile"}, env, cfg, nil
}

// nginxConfig writes the configuration of a private nginx: its own prefix
// (dir), pid file and temp paths, in the foreground, workers as many as
// cores, keep-alive connections to the upstream.
func (r *runner) nginxConfig(dir string, port int) ([]string, []string, string, error) {
	cfg := fmt.Sprintf(`daemon off;
worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path %[1]s/client_body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	upstream noop {
		server %[2]s;
		keepalive 256;
	}
	server {
		listen 127.0.0.1:%[3]d;
		location / {
			proxy_pass http://noop;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
`, dir, strings.TrimPrefix(r.upstream, "http://"), port)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, nil, "", err
	}
	return []string{r.o.nginx, "-p", dir + "/", "-c", path, "-e", filepath.Join(dir, "error.log")}, nil, cfg, nil
}

// start sets t up in dir and starts it, returning its process and URL.
func (r *runner) start(ctx context.Context, t target, dir string) (*proc, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	argv, env, cfg, err := t.setup(r, dir, port)
	if err != nil {
		return nil, "", err
	}
	if _, ok := r.configs[t.name]; !ok {
		r.configs[t.name] = redact(cfg, r.secret)
	}
	if t.goRuntime {
		env = append(env, "GODEBUG=gctrace=1")
	}
	p, err := startProc(dir, t.name, env, argv...)
	if err != nil {
		return nil, "", err
	}
	var url string
	err = p.waitFor(ctx, "serving", func() bool {
		url = t.ready(p, port)
		return url != ""
	})
	if err != nil {
		p.stop()
		return nil, "", err
	}
	return p, url, nil
}

// redact replaces the run's secret in a configuration shown in the report.
func redact(cfg, secret string) string {
	return strings.ReplaceAll(cfg, secret, "SECRET")
}
