package replayguardcaddy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/bloom"
	"github.com/replayguard/replayguard/disk"
	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/metrics"
	"github.com/replayguard/replayguard/postgres"
	"github.com/replayguard/replayguard/redisstore"
	"github.com/replayguard/replayguard/stores"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Placeholders the handler sets for the handlers after it, once a request
// has been verified: {http.vars.replayguard_key_id}, the identity (the id
// of the configured key entry whose key verified the request), and
// {http.vars.replayguard_subject}, the subject within that key (a JWT's
// sub), when the request has one. The request passed on also carries them
// as X-Replayguard-Key-Id and X-Replayguard-Subject.
const (
	VarKeyID   = "replayguard_key_id"
	VarSubject = "replayguard_subject"
)

// Handler is the Caddy module http.handlers.replayguard. Its JSON fields
// are those of replayguard.Config — keys, scheme, timestamp, nonce,
// idempotency, fail_mode and the rest — and the sections of the stores:
// redis, postgres and disk. The stores default to memory; "disk" keeps
// nonces and idempotency records in a file under Caddy's data directory
// across restarts. The binary's own sections (listen, upstream,
// admin_listen, auth_listen, trusted_proxies, server) have no field here:
// inside Caddy the site is the listener, reverse_proxy the upstream and
// Caddy's server options govern connections, and Caddy refuses them as
// unknown fields.
//
// Secrets, public_key_file, jwt.jwks_url, redis.addrs, redis.username,
// redis.password, postgres.dsn and disk.path may hold Caddy's global
// placeholders ({env.VAR}, {file.path}); they are replaced at
// provisioning, so the values never appear in the configuration the admin
// API returns.
type Handler struct {
	replayguard.Config
	// Redis is the Redis of the stores set to "redis".
	Redis redisstore.Section `json:"redis,omitempty"`
	// Postgres is the database of the PostgreSQL idempotency store
	// (idempotency.store: postgres).
	Postgres postgres.Config `json:"postgres,omitempty"`
	// Disk is the directory and settings of the stores set to "disk".
	// Path defaults to DefaultDiskPath; a relative path resolves against
	// Caddy's data directory (caddy.AppDataDir). One store holds a
	// directory: handlers naming the same directory share it, and must
	// name the same store settings.
	Disk disk.Config `json:"disk,omitempty"`

	guard   *replayguard.Guard
	mw      http.Handler
	poolKey string
	shared  *sharedStores
	reg     *prometheus.Registry
	logger  *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.replayguard",
		New: func() caddy.Module { return new(Handler) },
	}
}

// MarshalJSON writes the configuration model, leaving out the sections
// that are empty ("jwt": {} and the like), as Caddy's adapter and admin API
// show it.
func (h Handler) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(struct {
		replayguard.Config
		Redis    redisstore.Section `json:"redis,omitempty"`
		Postgres postgres.Config    `json:"postgres,omitempty"`
		Disk     disk.Config        `json:"disk,omitempty"`
	}{h.Config, h.Redis, h.Postgres, h.Disk})
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, err
	}
	for k, v := range fields {
		if string(v) == "{}" {
			delete(fields, k)
		}
	}
	return json.Marshal(fields)
}

// storePool holds the stores of every provisioned handler, keyed by a hash
// of the configuration that shapes them. A reload provisions the new
// handlers before it cleans up the old ones, so stores whose configuration
// did not change are handed over with everything they recorded.
var storePool = caddy.NewUsagePool()

// sharedStores is one entry of storePool.
type sharedStores struct {
	set *stores.Set
	// diskPath is the directory of the disk store, "" without one.
	diskPath string

	mu      sync.Mutex
	watched map[*prometheus.Registry]int
}

// diskMu serialises taking and returning the pool entries that hold a
// disk store, and guards diskPaths: which entry holds each directory. A
// directory is opened once per process; a second store on it would wait
// for the first to close, which during a reload never happens before the
// new configuration is provisioned.
var (
	diskMu    sync.Mutex
	diskPaths = map[string]string{} // directory → pool key
)

// Destruct closes the stores once no handler uses them. For an entry with
// a disk store the caller (Cleanup) holds diskMu.
func (s *sharedStores) Destruct() error {
	err := s.set.Close()
	if s.diskPath != "" {
		delete(diskPaths, s.diskPath)
	}
	return err
}

// watch reports whether reg is not watching these stores yet, and counts
// one more watcher. Handlers sharing stores in one configuration export the
// Bloom and disk statistics once.
func (s *sharedStores) watch(reg *prometheus.Registry) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watched[reg]++
	return s.watched[reg] == 1
}

func (s *sharedStores) unwatch(reg *prometheus.Registry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.watched[reg]--; s.watched[reg] <= 0 {
		delete(s.watched, reg)
	}
}

// Provision builds the Guard: it resolves placeholders, fills defaults,
// validates, takes the stores from the pool (opening them the first time)
// and registers the metrics on Caddy's registry.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	cfg, err := resolvePlaceholders(h.Config)
	if err != nil {
		return err
	}
	rc, pg := backendsResolved(h.Redis, h.Postgres)
	dc, err := diskResolved(h.Disk)
	if err != nil {
		return err
	}
	cfg = cfg.WithDefaults()
	if err := errors.Join(cfg.Validate(), backendsValid(cfg, rc, pg), dc.Validate()); err != nil {
		return fmt.Errorf("replayguard: %w", err)
	}

	key, err := poolKey(cfg, rc, pg, dc)
	if err != nil {
		return err
	}
	shared, loaded, err := takeStores(ctx, cfg, key, rc, pg, dc)
	if err != nil {
		return fmt.Errorf("replayguard: opening stores: %w", err)
	}
	h.poolKey, h.shared = key, shared
	if !loaded {
		// Once per store set: what it found unsafe, such as a Redis whose
		// eviction policy may drop live nonces.
		for _, w := range h.shared.set.Warnings {
			ctx.Slogger().Warn(w)
		}
	}

	opts := append(h.shared.set.Options(), replayguard.WithLogger(ctx.Slogger()))
	if reg := ctx.GetMetricsRegistry(); reg != nil {
		m, err := metrics.New(reg)
		if err != nil {
			return fmt.Errorf("replayguard: metrics: %w", err)
		}
		h.reg = reg
		if h.shared.watch(reg) {
			if b, ok := h.shared.set.Nonce.(*bloom.Memory); ok {
				m.WatchBloom("nonce-"+key[:12], b.Stats)
			}
			if err := watchDisk(reg, h.shared.set); err != nil {
				return fmt.Errorf("replayguard: metrics: %w", err)
			}
		}
		opts = append(opts, replayguard.WithObserver(m))
	}
	g, err := replayguard.New(cfg, opts...)
	if err != nil {
		return fmt.Errorf("replayguard: %w", err)
	}
	h.guard = g
	h.mw = g.Middleware(http.HandlerFunc(forward))
	fields := []zap.Field{
		zap.String("scheme", cfg.Scheme),
		zap.Strings("stores", h.shared.set.Names),
		zap.Bool("stores_carried_over", loaded),
		zap.String("fail_mode", cfg.FailMode),
	}
	if cfg.UsesDisk() {
		fields = append(fields, zap.String("disk_path", dc.Path), zap.Bool("disk_fsync", *dc.Fsync))
	}
	h.logger.Info("provisioned", fields...)
	return nil
}

// takeStores returns the pool entry of key, opening its stores the first
// time. An entry with a disk store is refused when another entry, with
// other store settings, holds its directory: opening it again would wait
// for a close that comes only after this handler is provisioned.
func takeStores(ctx caddy.Context, cfg replayguard.Config, key string,
	rc redisstore.Section, pg postgres.Config, dc disk.Config,
) (*sharedStores, bool, error) {
	open := func() (*sharedStores, error) {
		set, err := stores.Open(ctx, cfg, stores.WithRedisSection(rc), stores.WithPostgres(pg), stores.WithDisk(dc))
		if err != nil {
			return nil, err
		}
		return &sharedStores{set: set, watched: map[*prometheus.Registry]int{}}, nil
	}
	if !cfg.UsesDisk() {
		val, loaded, err := storePool.LoadOrNew(key, func() (caddy.Destructor, error) { return open() })
		if err != nil {
			return nil, false, err
		}
		return val.(*sharedStores), loaded, nil
	}

	diskMu.Lock()
	defer diskMu.Unlock()
	if holder, ok := diskPaths[dc.Path]; ok && holder != key {
		return nil, false, &replayguard.FieldError{Field: "disk.path", Err: fmt.Errorf(
			"%s is open for a handler with other store settings (nonce, idempotency, redis, postgres or disk): "+
				"handlers sharing a directory need the same settings, and a reload cannot change them while the "+
				"directory is in use; name another disk.path, or restart Caddy to apply them", dc.Path)}
	}
	val, loaded, err := storePool.LoadOrNew(key, func() (caddy.Destructor, error) {
		s, err := open()
		if err != nil {
			return nil, err
		}
		s.diskPath = dc.Path
		diskPaths[dc.Path] = key
		return s, nil
	})
	if err != nil {
		return nil, false, err
	}
	return val.(*sharedStores), loaded, nil
}

// Validate reports a configuration Caddy cannot run.
func (h *Handler) Validate() error {
	if h.guard == nil {
		return errors.New("replayguard: not provisioned")
	}
	return nil
}

// Cleanup hands the stores back to the pool; the last handler using them
// closes them.
func (h *Handler) Cleanup() error {
	if h.shared == nil {
		return nil
	}
	if h.reg != nil {
		h.shared.unwatch(h.reg)
	}
	if h.shared.diskPath != "" {
		diskMu.Lock()
		defer diskMu.Unlock()
	}
	_, err := storePool.Delete(h.poolKey)
	h.shared = nil
	return err
}

// ServeHTTP runs the pipeline. The signature is checked against the request
// as the client sent it (method and request-target before Caddy's rewrites),
// rejections are written as problem+json and end the chain without an
// error, so handle_errors never sees them; the handlers after replayguard
// get the rewritten request with the body the Guard read. An error of a
// later handler is returned to Caddy, and an idempotency record the request
// opened is released rather than stored.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	st := &chain{r: r, next: next}
	view := r.WithContext(context.WithValue(r.Context(), chainKey{}, st))
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && orig.URL != nil {
		view.Method = orig.Method
		view.RequestURI = orig.RequestURI
		view.URL = orig.URL
	}
	h.mw.ServeHTTP(w, view)
	return st.err
}

type chainKey struct{}

// chain carries, through the Guard, the request and handler Caddy passed
// in and the error the handler returned.
type chain struct {
	r    *http.Request
	next caddyhttp.Handler
	err  error
}

// forward is the Guard's next handler: it continues Caddy's chain with the
// rewritten request, given the verified context and the buffered body.
func forward(w http.ResponseWriter, verified *http.Request) {
	st, ok := verified.Context().Value(chainKey{}).(*chain)
	if !ok {
		http.Error(w, "replayguard: request outside a Caddy route", http.StatusInternalServerError)
		return
	}
	// Caddy's request goes on — its method and target as rewritten — with
	// the verified context and the buffered body: the Guard's copy of it,
	// which is this request's own, put back to Caddy's method and target
	// rather than copied once more.
	r := verified
	r.Method, r.URL, r.RequestURI = st.r.Method, st.r.URL, st.r.RequestURI
	// Nothing unsigned travels on: no header a client could pose as the
	// gateway's with, no trailers.
	r.Trailer = nil
	v, ok := replayguard.VerifiedFrom(r.Context())
	if !ok {
		replayguard.StripGatewayHeaders(r.Header)
	}
	if ok {
		caddyhttp.SetVar(r.Context(), VarKeyID, v.KeyID)
		if v.Subject != "" {
			caddyhttp.SetVar(r.Context(), VarSubject, v.Subject)
		}
		replayguard.SetIdentityHeaders(r.Header, v)
	}
	if err := st.next.ServeHTTP(w, r); err != nil {
		// Caddy answers the error (handle_errors or its default); nothing
		// of it belongs in an idempotency record.
		idempotency.Abandon(w)
		st.err = err
	}
}

// poolKey hashes what shapes the stores: the nonce section, the
// idempotency store, the Redis, PostgreSQL and disk sections, and the
// window span a Bloom store is sized for. Keys, schemes and the rest of the
// configuration can change on a reload without losing any record. Of a
// disk nonce store only store and mode count (the rest configures the
// memory stores), and the disk section counts only when a store is disk,
// with its defaults filled and its path resolved, so that handlers naming
// one directory in different words share one store.
func poolKey(cfg replayguard.Config, rc redisstore.Section, pg postgres.Config, dc disk.Config) (string, error) {
	k := struct {
		Nonce       replayguard.NonceConfig
		IdemEnabled bool
		IdemStore   string
		Redis       redisstore.Section
		Postgres    postgres.Config
		Disk        *disk.Config
		BloomSpan   replayguard.Duration
	}{
		Nonce:       cfg.Nonce,
		IdemEnabled: cfg.Idempotency.Enabled == nil || *cfg.Idempotency.Enabled,
		IdemStore:   cfg.Idempotency.Store,
		Redis:       rc,
		Postgres:    pg,
	}
	if cfg.Nonce.Store == replayguard.StoreDisk {
		k.Nonce = replayguard.NonceConfig{Store: cfg.Nonce.Store, Mode: cfg.Nonce.Mode}
	}
	if cfg.UsesDisk() {
		dc = dc.WithDefaults()
		k.Disk = &dc
	}
	if cfg.Nonce.Mode == replayguard.ModeBloom {
		k.BloomSpan = cfg.Timestamp.Tolerance + cfg.Timestamp.FutureSkew
	}
	b, err := json.Marshal(k)
	if err != nil {
		return "", fmt.Errorf("replayguard: store key: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// resolvePlaceholders returns a copy of cfg with Caddy's global
// placeholders replaced in the fields that hold secrets and addresses.
func resolvePlaceholders(cfg replayguard.Config) (replayguard.Config, error) {
	repl := caddy.NewReplacer()
	var errs []error
	keys := make([]replayguard.KeyConfig, len(cfg.Keys))
	for i, k := range cfg.Keys {
		k.Secrets = append([]string(nil), k.Secrets...)
		for j, s := range k.Secrets {
			k.Secrets[j] = repl.ReplaceKnown(s, "")
			if k.Secrets[j] == "" {
				errs = append(errs, fmt.Errorf("replayguard: keys[%d].secrets[%d]: empty (after placeholders, if any, were replaced)", i, j))
			}
		}
		k.PublicKeyFile = repl.ReplaceKnown(k.PublicKeyFile, "")
		keys[i] = k
	}
	cfg.Keys = keys
	cfg.JWT.JWKSURL = repl.ReplaceKnown(cfg.JWT.JWKSURL, "")
	return cfg, errors.Join(errs...)
}

// backendsResolved returns the Redis and PostgreSQL sections with their
// defaults and Caddy's global placeholders replaced in the addresses and
// credentials.
func backendsResolved(rc redisstore.Section, pg postgres.Config) (redisstore.Section, postgres.Config) {
	repl := caddy.NewReplacer()
	if rc.Addrs != nil {
		addrs := make([]string, 0, len(rc.Addrs))
		for _, a := range rc.Addrs {
			addrs = append(addrs, repl.ReplaceKnown(a, ""))
		}
		rc.Addrs = addrs
	}
	rc.Username = repl.ReplaceKnown(rc.Username, "")
	rc.Password = repl.ReplaceKnown(rc.Password, "")
	pg.DSN = repl.ReplaceKnown(pg.DSN, "")
	return rc.WithDefaults(), pg.WithDefaults()
}

// DefaultDiskPath is disk.path when none is given, relative to Caddy's
// data directory: $XDG_DATA_HOME/caddy/replayguard/default, or
// ~/.local/share/caddy/replayguard/default on Linux without XDG_DATA_HOME.
const DefaultDiskPath = "replayguard/default"

// diskResolved returns the disk section with its defaults, Caddy's global
// placeholders replaced in its path, and the path made absolute: unset it
// is DefaultDiskPath, and a relative one resolves against Caddy's data
// directory.
func diskResolved(c disk.Config) (disk.Config, error) {
	c.Path = caddy.NewReplacer().ReplaceKnown(c.Path, "")
	if c.Path == "" {
		c.Path = DefaultDiskPath
	}
	if !filepath.IsAbs(c.Path) {
		c.Path = filepath.Join(caddy.AppDataDir(), c.Path)
	}
	abs, err := filepath.Abs(c.Path)
	if err != nil {
		return c, fmt.Errorf("replayguard: disk.path: %w", err)
	}
	c.Path = abs
	return c.WithDefaults(), nil
}

// backendsValid checks the Redis and PostgreSQL sections against the
// stores cfg names.
func backendsValid(cfg replayguard.Config, rc redisstore.Section, pg postgres.Config) error {
	var errs []error
	if cfg.UsesRedis() || len(rc.Addrs) > 0 {
		errs = append(errs, rc.Validate())
	}
	if cfg.UsesRedis() && len(rc.Addrs) == 0 {
		errs = append(errs, &replayguard.FieldError{Field: "redis.addrs", Err: errors.New("required when a store is \"redis\"")})
	}
	errs = append(errs, pg.Validate())
	if cfg.Idempotency.Store == replayguard.StorePostgres && pg.DSN == "" {
		errs = append(errs, &replayguard.FieldError{Field: "postgres.dsn", Err: errors.New("required when idempotency.store is \"postgres\"")})
	}
	return errors.Join(errs...)
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
