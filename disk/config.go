package disk

import (
	"errors"
	"math"
	"time"

	"github.com/replayguard/replayguard/confval"
)

// Defaults of Config and of Open's options.
const (
	// DefaultMaxBytes bounds what the store holds: 1 GiB of entries as
	// they are laid out on disk (about 12 million nonces, whose index
	// takes about 1 GB of memory).
	DefaultMaxBytes = 1 << 30
	// DefaultLockTimeout is how long Open waits for a directory another
	// store holds.
	DefaultLockTimeout = 10 * time.Second
	// DefaultTimeout bounds each store call, its commit included.
	DefaultTimeout = 5 * time.Second
	// DefaultReapInterval is how often expired entries are reclaimed.
	DefaultReapInterval = time.Second
)

// Config is the `disk:` section of the configuration: where the durable
// embedded store keeps its file and how. Field names are the
// configuration's (YAML and JSON).
type Config struct {
	// Path is the store's directory; it is created if missing and holds
	// the store's files. The binary's default is "<config file
	// name>.data" beside the configuration file, and a relative path
	// resolves against the configuration file's directory. Required
	// when a store is "disk".
	Path string `yaml:"path" json:"path,omitempty"`
	// Fsync puts every acknowledged write on stable storage before it is
	// acknowledged: a nonce and an idempotency claim before the upstream
	// runs, a completed record before the response's last byte leaves.
	// Concurrent requests share one fsync (group commit). false survives
	// a crash of the process, not one of the machine. Default true.
	Fsync *bool `yaml:"fsync" json:"fsync,omitempty"`
	// MaxBytes bounds what the store holds, counted as its entries take
	// room in the store; past it new nonces and records fail with
	// store_unavailable rather than evict a live one. It bounds memory
	// too: the store indexes its entries in memory, about 85 bytes each.
	// Default DefaultMaxBytes (1 GiB).
	MaxBytes int64 `yaml:"max_bytes" json:"max_bytes,omitempty"`
	// KeyShare is the fraction of MaxBytes one key entry may hold, its
	// nonces and idempotency records together; past it that key gets
	// quota_exceeded while others go on. Default 0: 1 / the number of key
	// entries (the jwks_url key set counts as one).
	KeyShare float64 `yaml:"key_share" json:"key_share,omitempty"`
	// LockTimeout is how long start-up waits for a directory another
	// process (or a store of this one not yet closed) holds, before it
	// gives up. Default DefaultLockTimeout (10s).
	LockTimeout confval.Duration `yaml:"lock_timeout" json:"lock_timeout,omitempty"`
	// Timeout bounds each store call, waiting for its commit included;
	// past it the request gets store_unavailable. Default DefaultTimeout
	// (5s).
	Timeout confval.Duration `yaml:"timeout" json:"timeout,omitempty"`
	// ReapInterval is how often expired nonces and records are removed
	// so that their room is reused. Default DefaultReapInterval (1s).
	ReapInterval confval.Duration `yaml:"reap_interval" json:"reap_interval,omitempty"`
}

// WithDefaults returns c with every unset field at its default. Path has
// no default here: it depends on where the configuration lives.
func (c Config) WithDefaults() Config {
	if c.Fsync == nil {
		t := true
		c.Fsync = &t
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.LockTimeout == 0 {
		c.LockTimeout = confval.Duration(DefaultLockTimeout)
	}
	if c.Timeout == 0 {
		c.Timeout = confval.Duration(DefaultTimeout)
	}
	if c.ReapInterval == 0 {
		c.ReapInterval = confval.Duration(DefaultReapInterval)
	}
	return c
}

// Validate checks c and returns every problem found, each a
// *confval.FieldError naming its field. Whether Path is required depends
// on the stores configured, which the caller knows.
func (c Config) Validate() error {
	var errs []error
	add := func(field, msg string) {
		errs = append(errs, &confval.FieldError{Field: "disk." + field, Err: errors.New(msg)})
	}
	if c.MaxBytes < 0 {
		add("max_bytes", "must be positive")
	}
	if !(c.KeyShare >= 0 && c.KeyShare <= 1) {
		add("key_share", "want a fraction between 0 (the default: 1 / the number of key entries) and 1")
	}
	for _, d := range []struct {
		field string
		d     confval.Duration
	}{{"lock_timeout", c.LockTimeout}, {"timeout", c.Timeout}, {"reap_interval", c.ReapInterval}} {
		if d.d < 0 {
			add(d.field, "must be positive")
		}
	}
	return errors.Join(errs...)
}

// Options returns the options of Open that c describes, one key entry
// holding at most share of MaxBytes (the caller resolves KeyShare's
// default, 1 / the number of key entries: replayguard.Config.KeyShare);
// a share of 1 or more sets no per-entry bound.
func (c Config) Options(share float64) []Option {
	c = c.WithDefaults()
	opts := []Option{
		WithFsync(*c.Fsync), WithMaxBytes(c.MaxBytes), WithLockTimeout(c.LockTimeout.D()),
		WithTimeout(c.Timeout.D()), WithReapInterval(c.ReapInterval.D()),
	}
	if share > 0 && share < 1 {
		opts = append(opts, WithKeyShare(int64(math.Max(1, math.Floor(float64(c.MaxBytes)*share)))))
	}
	return opts
}
