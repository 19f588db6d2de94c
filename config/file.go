package config

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/disk"
	"github.com/replayguard/replayguard/postgres"
	"github.com/replayguard/replayguard/redisstore"
	"github.com/replayguard/replayguard/stores"
)

// File is the configuration file of the replayguard binary: the Guard's
// configuration (replayguard.Config, inlined, so its fields sit at the top
// level of the file) and the sections only the binary reads: its listeners,
// upstream, trusted proxies, servers and the shared stores' backends.
type File struct {
	replayguard.Config `yaml:",inline"`

	// Listen is the address the reverse proxy serves on. Default
	// 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// Upstream is the URL the reverse proxy passes accepted requests to.
	Upstream string `yaml:"upstream"`
	// AdminListen serves /healthz, /readyz and /metrics when set.
	AdminListen string `yaml:"admin_listen"`
	// AuthListen serves the forward-auth endpoint (Traefik ForwardAuth,
	// nginx auth_request) when set. Default: off.
	AuthListen string `yaml:"auth_listen"`
	// TrustedProxies are the peers (CIDR or IP) whose X-Forwarded-* headers
	// the forward-auth endpoint takes as the request to verify, and whose
	// X-Forwarded-Proto names the client's scheme on listen; any other peer
	// is refused. Default loopback: 127.0.0.0/8 and ::1/128.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// Server tunes the HTTP servers on listen, auth_listen and admin_listen.
	Server Server `yaml:"server"`
	// Redis is the Redis of the stores set to "redis".
	Redis redisstore.Section `yaml:"redis"`
	// Postgres is the database of the PostgreSQL idempotency store.
	Postgres postgres.Config `yaml:"postgres"`
	// Routes, when set, serve several APIs and webhook endpoints from one
	// gateway: each request goes to the route it matches, verified as
	// that route says; the top level's fields are the routes' defaults.
	// Without routes, the top level is one implicit route.
	Routes []Route `yaml:"routes,omitempty"`
	// Disk is the durable embedded store of the stores set to "disk",
	// the binary's default. Load sets its path, when unset, to "<the
	// configuration file's name>.data" beside that file, and resolves a
	// relative one against the file's directory.
	Disk disk.Config `yaml:"disk"`
	// Log configures the binary's logs: level, format, access lines and
	// the bound on rejection lines.
	Log Log `yaml:"log"`
}

// Server bounds what one connection of the binary may hold: slow or idle
// clients are cut, oversized headers refused.
type Server struct {
	// ReadHeaderTimeout bounds reading a request's headers. Default 10s.
	ReadHeaderTimeout replayguard.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request, body included. Default 30s.
	ReadTimeout replayguard.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writing a response, from the end of the
	// request's headers. Default 0: none (an upstream may answer slowly).
	WriteTimeout replayguard.Duration `yaml:"write_timeout"`
	// IdleTimeout closes a keep-alive connection idle this long. Default 120s.
	IdleTimeout replayguard.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes bounds a request's header block; larger → 431.
	// Default 65536.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
}

// Defaults of File.
const (
	DefaultListen            = "127.0.0.1:8080"
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
)

// WithDefaults returns f with every unset field at its default. A store
// left unnamed is "disk", the binary's durable default — except a Bloom
// nonce store, which has no disk form and stays in memory.
func (f File) WithDefaults() File {
	if f.Nonce.Store == "" && f.Nonce.Mode != replayguard.ModeBloom {
		f.Nonce.Store = replayguard.StoreDisk
	}
	if f.Idempotency.Store == "" {
		f.Idempotency.Store = replayguard.StoreDisk
	}
	f.Config = f.Config.WithDefaults()
	if f.Listen == "" {
		f.Listen = DefaultListen
	}
	if len(f.TrustedProxies) == 0 {
		f.TrustedProxies = replayguard.DefaultTrustedProxies()
	}
	f.Redis = f.Redis.WithDefaults()
	f.Postgres = f.Postgres.WithDefaults()
	f.Disk = f.Disk.WithDefaults()
	f.Log = f.Log.WithDefaults()
	sv := &f.Server
	if sv.ReadHeaderTimeout == 0 {
		sv.ReadHeaderTimeout = replayguard.Duration(DefaultReadHeaderTimeout)
	}
	if sv.ReadTimeout == 0 {
		sv.ReadTimeout = replayguard.Duration(DefaultReadTimeout)
	}
	if sv.IdleTimeout == 0 {
		sv.IdleTimeout = replayguard.Duration(DefaultIdleTimeout)
	}
	if sv.MaxHeaderBytes == 0 {
		sv.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return f
}

// Validate checks f (after WithDefaults) and returns every problem found,
// each naming its field.
func (f File) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(f.Routes) == 0 {
		add(f.Config.Validate())
	} else {
		// The top level is the routes' defaults: the routes that use
		// its keys are checked with them (resolveRoutes).
		for _, err := range unjoin(f.Config.Validate()) {
			var fe *replayguard.FieldError
			if !errors.As(err, &fe) || fe.Field != "keys" {
				add(err)
			}
		}
	}
	if f.Upstream != "" {
		add(validUpstream("upstream", f.Upstream))
	}
	add(validAddr("listen", f.Listen))
	add(validAddr("admin_listen", f.AdminListen))
	add(validAddr("auth_listen", f.AuthListen))
	if f.AuthListen != "" && f.DedupeOnly() {
		add(fieldErr("auth_listen", "the %s preset signs no timestamp, so only the idempotency record stops a replayed delivery, and forward-auth cannot keep one; serve it as a reverse proxy (upstream)", f.Scheme))
	}
	if _, err := f.TrustedProxyNets(); err != nil {
		add(err)
	}
	for _, d := range []struct {
		field string
		d     replayguard.Duration
	}{
		{"server.read_header_timeout", f.Server.ReadHeaderTimeout}, {"server.read_timeout", f.Server.ReadTimeout},
		{"server.write_timeout", f.Server.WriteTimeout}, {"server.idle_timeout", f.Server.IdleTimeout},
	} {
		if d.d < 0 {
			add(fieldErr(d.field, "must be positive"))
		}
	}
	if f.Server.MaxHeaderBytes < 0 {
		add(fieldErr("server.max_header_bytes", "must be positive"))
	}
	if f.UsesRedis() || len(f.Redis.Addrs) > 0 {
		add(f.Redis.Validate())
	}
	if f.UsesRedis() && len(f.Redis.Addrs) == 0 {
		add(fieldErr("redis.addrs", "required when a store is %q", replayguard.StoreRedis))
	}
	add(f.Postgres.Validate())
	add(f.Disk.Validate())
	add(f.Log.Validate())
	if f.Idempotency.Store == replayguard.StorePostgres && f.Postgres.DSN == "" {
		add(fieldErr("postgres.dsn", "required when idempotency.store is %q", replayguard.StorePostgres))
	}
	return errors.Join(errs...)
}

// TrustedProxyNets parses trusted_proxies (replayguard.ParseTrustedProxies).
func (f File) TrustedProxyNets() ([]*net.IPNet, error) {
	return replayguard.ParseTrustedProxies(f.TrustedProxies)
}

func fieldErr(field, format string, args ...any) error {
	return &replayguard.FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

func validAddr(field, addr string) error {
	if addr == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fieldErr(field, "want host:port, got %q", addr)
	}
	return nil
}

// StoreOptions returns what package stores needs of f besides the Guard's
// configuration: the Redis, PostgreSQL and disk sections.
func (f File) StoreOptions() []stores.Option {
	return []stores.Option{stores.WithRedisSection(f.Redis), stores.WithPostgres(f.Postgres), stores.WithDisk(f.Disk)}
}

// dataDir returns the default disk.path of the configuration file at
// path: its name with ".data" appended, beside it.
func dataDir(path string) string {
	return path + ".data"
}

// resolveDisk sets disk.path for the configuration file at path: the
// default when unset, a relative one resolved against the file's
// directory.
func (f *File) resolveDisk(path string) {
	switch {
	case f.Disk.Path == "":
		f.Disk.Path = dataDir(path)
	case !filepath.IsAbs(f.Disk.Path):
		f.Disk.Path = filepath.Join(filepath.Dir(path), f.Disk.Path)
	}
	if abs, err := filepath.Abs(f.Disk.Path); err == nil {
		f.Disk.Path = abs
	}
}
