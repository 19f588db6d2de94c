package main

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/config"
	"github.com/replayguard/replayguard/stores"
)

// live is the gateway the listeners serve, swapped by a reload.
type live struct {
	logger  *slog.Logger
	path    string // the configuration file; "" when it cannot be reloaded
	reloads *prometheus.CounterVec

	cur atomic.Pointer[gateway]
	mu  sync.Mutex // one reload at a time
	// retiring are replaced gateways whose requests are finishing.
	retiring sync.WaitGroup
}

func newLive(logger *slog.Logger, path string) *live {
	return &live{logger: logger, path: path, reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "replayguard_config_reloads_total",
		Help: "Configuration reloads (SIGHUP), by result: ok, partial (fields that cannot change while running kept their value), error (the running configuration stays).",
	}, []string{"result"})}
}

// open builds the gateway of cfg. One replacing prev keeps prev's stores
// when reuse is set (cfg shapes them alike), else opens new ones, which
// take over prev's disk store (one process holds its directory); it
// reports to prev's registry unless the routes' label set changes.
func (l *live) open(ctx context.Context, cfg config.File, prev *gateway, reuse bool) (*gateway, error) {
	gw := &gateway{cfg: cfg, logger: l.logger}
	opened := false
	if prev != nil && reuse {
		gw.set = prev.set
	} else {
		opts := cfg.StoreOptions()
		if prev != nil && prev.set.Disk() != nil {
			opts = append(opts, stores.WithDiskDB(prev.set.Disk()))
		}
		set, err := stores.Open(ctx, cfg.StoreConfig(), opts...)
		if err != nil {
			return nil, err
		}
		gw.set, opened = set, true
	}
	if prev != nil && (len(prev.cfg.Routes) > 0) == (len(cfg.Routes) > 0) {
		gw.reg = prev.reg
	} else {
		gw.reg = prometheus.NewRegistry()
		gw.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), l.reloads)
	}
	var prevAccess *accessLog
	if prev != nil {
		prevAccess = prev.access
	}
	if err := gw.build(ctx, prevAccess); err != nil {
		if opened {
			gw.set.ReleaseDisk()
			_ = gw.set.Close()
		}
		return nil, err
	}
	if opened && prev != nil && gw.set.Disk() != nil {
		prev.set.ReleaseDisk() // gw's stores own it now
	}
	return gw, nil
}

// handler serves each request on the current gateway's handler pick
// returns, holding that gateway until the request is done.
func (l *live) handler(pick func(*gateway) http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gw := l.acquire()
		defer gw.refs.Add(-1)
		pick(gw).ServeHTTP(w, r)
	})
}

// acquire returns the current gateway, counted as serving one more
// request: once a reload swapped it out, its count only falls.
func (l *live) acquire() *gateway {
	for {
		gw := l.cur.Load()
		gw.refs.Add(1)
		if l.cur.Load() == gw {
			return gw
		}
		gw.refs.Add(-1)
	}
}

// reloadOnHangup reloads the configuration at each SIGHUP until ctx is
// done or the returned func is called.
func (l *live) reloadOnHangup(ctx context.Context) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case <-hup:
				l.reload(ctx)
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}

// reload reads the configuration file again. An invalid one is logged and
// counted, and the running configuration stays; a valid one serves new
// requests at once, with the fields that cannot change while running
// (listeners, the disk store, the servers' limits, the log's level and
// format) at their running values.
func (l *live) reload(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cfg, err := config.Load(l.path)
	if err == nil && cfg.Upstream == "" && cfg.AuthListen == "" && len(cfg.Routes) == 0 {
		err = errUpstreamRequired()
	}
	if err != nil {
		l.reloads.WithLabelValues("error").Inc()
		l.logger.Error("configuration reload failed; the running configuration stays", slog.String("path", l.path), slog.String("error", err.Error()))
		return
	}
	cur := l.cur.Load()
	kept := keepRunning(cur.cfg, &cfg)
	reuse := sameStores(cur.cfg, cfg)
	if reuse && cur.cfg.StoreConfig().KeyEntries() != cfg.StoreConfig().KeyEntries() {
		kept = append(kept, "per-key shares (the stores keep those of the key entries they were opened with)")
	}
	gw, err := l.open(ctx, cfg, cur, reuse)
	if err != nil {
		l.reloads.WithLabelValues("error").Inc()
		l.logger.Error("configuration reload failed; the running configuration stays", slog.String("path", l.path), slog.String("error", err.Error()))
		return
	}
	l.cur.Store(gw)
	result := "ok"
	if len(kept) > 0 {
		result = "partial"
		l.logger.Warn("configuration reloaded; fields that cannot change while running keep their running value until a restart",
			slog.String("path", l.path), slog.Any("kept", kept))
	}
	l.reloads.WithLabelValues(result).Inc()
	l.logger.Info("configuration reloaded", slog.String("path", l.path), slog.String("result", result), slog.Bool("stores_kept", gw.set == cur.set))
	l.retiring.Add(1)
	go func() {
		defer l.retiring.Done()
		l.retire(cur, gw.set != cur.set)
	}()
}

// retire waits for the requests still served by old, then closes its
// stores when they were replaced.
func (l *live) retire(old *gateway, closeStores bool) {
	deadline := time.Now().Add(shutdownGrace)
	for old.refs.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !closeStores {
		return
	}
	if err := old.set.Close(); err != nil {
		l.logger.Warn("closing the replaced stores", slog.String("error", err.Error()))
	}
}

// close closes the current gateway's stores once replaced ones are
// retired.
func (l *live) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.retiring.Wait()
	if err := l.cur.Load().set.Close(); err != nil {
		l.logger.Warn("closing the stores", slog.String("error", err.Error()))
	}
}

// keepRunning sets in next the fields that cannot change while running to
// their value in running, and names those that differed.
func keepRunning(running config.File, next *config.File) []string {
	var kept []string
	keep := func(name string, differ bool) {
		if differ {
			kept = append(kept, name)
		}
	}
	keep("listen", next.Listen != running.Listen)
	keep("admin_listen", next.AdminListen != running.AdminListen)
	keep("auth_listen", next.AuthListen != running.AuthListen)
	keep("server", next.Server != running.Server)
	keep("log.level", next.Log.Level != running.Log.Level)
	keep("log.format", next.Log.Format != running.Log.Format)
	rd, nd := running.Disk, next.Disk
	keep("disk.path", nd.Path != rd.Path)
	nd.Path = rd.Path
	keep("disk (fsync, max_bytes, key_share, lock_timeout, timeout, reap_interval)", !reflect.DeepEqual(nd, rd))
	next.Listen, next.AdminListen, next.AuthListen, next.Server = running.Listen, running.AdminListen, running.AuthListen, running.Server
	next.Log.Level, next.Log.Format, next.Disk = running.Log.Level, running.Log.Format, running.Disk
	return kept
}

// storeShape is what shapes the stores of a configuration, but for the
// number of key entries among which their bounds are shared.
type storeShape struct {
	nonce       replayguard.NonceConfig
	idempotency replayguard.IdempotencyConfig
	span        time.Duration
	failOpen    bool
	redis       any
	postgres    any
	disk        any
}

func shapeOf(f config.File) storeShape {
	c := f.StoreConfig()
	id := c.Idempotency
	// Only what the stores are built from.
	id = replayguard.IdempotencyConfig{Enabled: id.Enabled, Store: id.Store, MemoryMaxBytes: id.MemoryMaxBytes, KeyShare: id.KeyShare, MaxResponseBytes: id.MaxResponseBytes}
	return storeShape{nonce: c.Nonce, idempotency: id, span: c.Timestamp.Tolerance.D() + c.Timestamp.FutureSkew.D(),
		failOpen: c.FailMode == replayguard.FailOpen, redis: f.Redis, postgres: f.Postgres, disk: f.Disk}
}

// sameStores reports configurations whose stores are built alike, but
// for the number of key entries: the running stores serve the next one.
func sameStores(a, b config.File) bool {
	return reflect.DeepEqual(shapeOf(a), shapeOf(b))
}
