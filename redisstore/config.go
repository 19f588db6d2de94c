package redisstore

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/replayguard/replayguard/confval"
	"github.com/replayguard/replayguard/redisstore/layout"
)

// Defaults of Config.
const (
	// DefaultTimeout is the default redis.timeout.
	DefaultTimeout = 200 * time.Millisecond
	// DefaultKeyPrefix is the default redis.key_prefix.
	DefaultKeyPrefix = layout.DefaultPrefix
)

// Values of Config.Tagging.
const (
	// TaggingKey tags each nonce and idempotency record by its own digest
	// (layout.TagKey): records spread over every Cluster slot. The default.
	TaggingKey = "key"
	// TaggingPrincipal tags them by their principal (layout.TagPrincipal):
	// a request's nonce and idempotency record share a slot, so a Cluster
	// takes both in one call, and one principal's records all live on one
	// shard.
	TaggingPrincipal = "principal"
)

// Config is the `redis:` section of the configuration: the Redis the
// shared stores use. Field names are the configuration's (YAML and JSON).
type Config struct {
	// Addrs are host:port addresses: one is a standalone server, several a
	// Cluster (any of its nodes), or the Sentinels when MasterName is set.
	// Required when a store is "redis". Default none.
	Addrs []string `yaml:"addrs" json:"addrs,omitempty"`
	// MasterName selects Sentinel mode: the name of the master the
	// Sentinels at Addrs watch. Default none.
	MasterName string `yaml:"master_name" json:"master_name,omitempty"`
	// Username authenticates with Redis 6 ACLs. Default none.
	Username string `yaml:"username" json:"username,omitempty"`
	// Password authenticates every connection. Default none.
	Password string `yaml:"password" json:"password,omitempty"`
	// DB is the database number (standalone and Sentinel; a Cluster has
	// only 0). Default 0.
	DB int `yaml:"db" json:"db,omitempty"`
	// TLS connects with TLS (system roots, TLS 1.2 or later). Default
	// false.
	TLS bool `yaml:"tls" json:"tls,omitempty"`
	// Timeout bounds each store call, the client's retries included.
	// Default DefaultTimeout (200ms).
	Timeout confval.Duration `yaml:"timeout" json:"timeout,omitempty"`
	// KeyPrefix starts every key; instances sharing records must use the
	// same. Default DefaultKeyPrefix ("rg").
	KeyPrefix string `yaml:"key_prefix" json:"key_prefix,omitempty"`
}

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = confval.Duration(DefaultTimeout)
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultKeyPrefix
	}
	return c
}

// Validate checks c and returns every problem found, each a
// *confval.FieldError naming its field (redis.addrs[0], redis.timeout, …).
// Whether Addrs is required depends on the stores configured, which the
// caller knows: Validate only checks the addresses given.
func (c Config) Validate() error {
	var errs []error
	for i, a := range c.Addrs {
		if _, _, err := net.SplitHostPort(a); err != nil || a == "" {
			errs = append(errs, &confval.FieldError{Field: fmt.Sprintf("redis.addrs[%d]", i), Err: fmt.Errorf("want host:port, got %q", a)})
		}
	}
	if c.MasterName != "" && len(c.Addrs) == 0 {
		errs = append(errs, &confval.FieldError{Field: "redis.addrs", Err: errors.New("the Sentinels' addresses are required with master_name")})
	}
	if c.DB < 0 {
		errs = append(errs, &confval.FieldError{Field: "redis.db", Err: errors.New("must not be negative")})
	}
	if c.Timeout < 0 {
		errs = append(errs, &confval.FieldError{Field: "redis.timeout", Err: errors.New("must be positive")})
	}
	return errors.Join(errs...)
}

// StoreOptions returns the options of a store c configures: its key prefix
// and timeout.
func (c Config) StoreOptions() []Option {
	return []Option{WithKeyPrefix(c.KeyPrefix), WithTimeout(c.Timeout.D())}
}

// Section is the `redis:` section as the binary and the Caddy module read
// it: Config, the settings every shape shares (the Traefik plugin's
// options mirror it), and the key tagging, which only they take — the
// plugin always tags by key. Field names are the configuration's (YAML and
// JSON); Config's sit beside Tagging.
type Section struct {
	Config `yaml:",inline"`
	// Tagging chooses the hash tag of nonce and idempotency record keys:
	// TaggingKey ("key") or TaggingPrincipal ("principal"; see
	// docs/redis.md for what it costs on a Cluster). Instances sharing
	// records must use the same; stores.Open records it in Redis and
	// refuses another (CheckTagging). Default TaggingKey.
	Tagging string `yaml:"tagging" json:"tagging,omitempty"`
}

// WithDefaults returns s with every unset field at its default.
func (s Section) WithDefaults() Section {
	s.Config = s.Config.WithDefaults()
	if s.Tagging == "" {
		s.Tagging = TaggingKey
	}
	return s
}

// Validate checks s as Config.Validate does, and its tagging.
func (s Section) Validate() error {
	err := s.Config.Validate()
	if _, ok := s.tagging(); !ok {
		err = errors.Join(err, &confval.FieldError{Field: "redis.tagging",
			Err: fmt.Errorf("want %q or %q, got %q", TaggingKey, TaggingPrincipal, s.Tagging)})
	}
	return err
}

// tagging returns the layout.Tagging Tagging names, and whether it names
// one ("" names the default).
func (s Section) tagging() (layout.Tagging, bool) {
	switch s.Tagging {
	case "", TaggingKey:
		return layout.TagKey, true
	case TaggingPrincipal:
		return layout.TagPrincipal, true
	}
	return layout.TagKey, false
}

// Keys returns the key layout s configures: its prefix and tagging.
func (s Section) Keys() layout.Keys {
	t, _ := s.tagging()
	return layout.Keys{Prefix: s.Config.WithDefaults().KeyPrefix, Tagging: t}
}

// StoreOptions returns the options of a store s configures: its key
// prefix, tagging and timeout.
func (s Section) StoreOptions() []Option {
	return append(s.Config.StoreOptions(), WithTagging(s.Keys().Tagging))
}
