package traefik

import (
	"errors"
	"fmt"
	"strings"

	"github.com/replayguard/replayguard/redisstore"

	"github.com/replayguard/replayguard"
)

// Config is the plugin's configuration. It is replayguard's one
// configuration model (see docs/configuration.md) under Traefik's
// conventions: the same fields and nesting, names in camelCase
// (max_body_bytes is maxBodyBytes, key_id_header is keyIdHeader) and
// durations as strings ("5m", "200ms", "1d"). Traefik matches option names
// to field names without regard to case.
//
// The fields of the model that describe the binary's listeners (listen,
// upstream, admin_listen, auth_listen, trusted_proxies, server) have no
// meaning inside Traefik and are absent; so is postgres, which the plugin cannot
// reach (its driver does not run in Traefik's interpreter).
type Config struct {
	// MaxBodyBytes bounds the request body. Default 1 MiB.
	MaxBodyBytes int64 `json:"maxBodyBytes,omitempty"`
	// Scheme selects the signature scheme. Default "hmac".
	Scheme string `json:"scheme,omitempty"`
	// Keys are the verification keys.
	Keys []Key `json:"keys,omitempty"`
	// HMAC configures the hmac scheme's header names.
	HMAC HMAC `json:"hmac,omitempty"`
	// JWT configures the jwt scheme.
	JWT JWT `json:"jwt,omitempty"`
	// RFC9421 configures the rfc9421 scheme.
	RFC9421 RFC9421 `json:"rfc9421,omitempty"`
	// Timestamp is the freshness window.
	Timestamp Timestamp `json:"timestamp,omitempty"`
	// Nonce configures replay protection.
	Nonce Nonce `json:"nonce,omitempty"`
	// Idempotency configures the dedupe layer (stores "memory" and
	// "redis").
	Idempotency Idempotency `json:"idempotency,omitempty"`
	// Redis is the shared store, used by stores set to "redis".
	Redis Redis `json:"redis,omitempty"`
	// FailMode is "closed" (default: 503 when a store fails) or "open".
	FailMode string `json:"failMode,omitempty"`
}

// Key is one verification key (keys[] of the model).
type Key struct {
	// ID names the key on the wire.
	ID string `json:"id,omitempty"`
	// Secrets of a symmetric key; several during a rotation. A plain
	// string is its UTF-8 bytes; "base64:…" is decoded.
	Secrets []string `json:"secrets,omitempty"`
	// Algorithm is the one algorithm an asymmetric key is used with.
	Algorithm string `json:"algorithm,omitempty"`
	// PublicKeyFile is a PEM public key, read by Traefik's process.
	PublicKeyFile string `json:"publicKeyFile,omitempty"`
	// JWK is a public key as a JSON Web Key.
	JWK map[string]any `json:"jwk,omitempty"`
}

// HMAC names the hmac scheme's headers; empty fields keep the defaults.
type HMAC struct {
	KeyIDHeader     string `json:"keyIdHeader,omitempty"`
	TimestampHeader string `json:"timestampHeader,omitempty"`
	NonceHeader     string `json:"nonceHeader,omitempty"`
	SignatureHeader string `json:"signatureHeader,omitempty"`
}

// JWT configures the jwt scheme.
type JWT struct {
	Header   string   `json:"header,omitempty"`
	Prefix   string   `json:"prefix,omitempty"`
	JWKSURL  string   `json:"jwksUrl,omitempty"`
	JWKSID   string   `json:"jwksId,omitempty"`
	Issuer   string   `json:"issuer,omitempty"`
	Audience string   `json:"audience,omitempty"`
	Leeway   string   `json:"leeway,omitempty"`
	Bind     []string `json:"bind,omitempty"`
	DPoP     bool     `json:"dpop,omitempty"`
}

// RFC9421 configures the rfc9421 scheme.
type RFC9421 struct {
	RequiredComponents []string `json:"requiredComponents,omitempty"`
}

// Timestamp is the freshness window.
type Timestamp struct {
	Tolerance  string `json:"tolerance,omitempty"`
	FutureSkew string `json:"futureSkew,omitempty"`
}

// Nonce configures replay protection.
type Nonce struct {
	// Store is "memory" (default) or "redis" ("disk" needs an embedded
	// database the interpreter cannot load).
	Store string `json:"store,omitempty"`
	// Mode is "exact" (default) or "bloom".
	Mode string `json:"mode,omitempty"`
	// Capacity is the number of nonces a Bloom store is sized for within
	// one window. Default 1,000,000.
	Capacity int `json:"capacity,omitempty"`
	// FalsePositiveRate is the Bloom store's target. Default 1e-9.
	FalsePositiveRate float64 `json:"falsePositiveRate,omitempty"`
	// LocalShield puts an in-process filter in front of the Redis store:
	// repeats of replay keys it has seen are answered without a round
	// trip. Ignored with the memory store. Default false.
	LocalShield bool `json:"localShield,omitempty"`
	// MaxEntries caps the exact memory store. Default 10,000,000; -1: no
	// cap.
	MaxEntries int `json:"maxEntries,omitempty"`
	// MaxSubFilters bounds the growth of a partition of the memory Bloom
	// store. Default 4.
	MaxSubFilters int `json:"maxSubfilters,omitempty"`
	// KeyShare is the fraction of the memory store's bound one key entry
	// may hold (0: 1 / the number of key entries).
	KeyShare float64 `json:"keyShare,omitempty"`
}

// Idempotency configures the dedupe layer.
type Idempotency struct {
	Enabled            *bool    `json:"enabled,omitempty"`
	Required           *bool    `json:"required,omitempty"`
	Methods            []string `json:"methods,omitempty"`
	TTL                string   `json:"ttl,omitempty"`
	Lease              string   `json:"lease,omitempty"`
	MaxResponseBytes   int64    `json:"maxResponseBytes,omitempty"`
	StoreServerErrors  bool     `json:"storeServerErrors,omitempty"`
	Store              string   `json:"store,omitempty"`
	DeriveKey          string   `json:"deriveKey,omitempty"`
	DeriveWindow       string   `json:"deriveWindow,omitempty"`
	FingerprintHeaders []string `json:"fingerprintHeaders,omitempty"`
	MemoryMaxBytes     int64    `json:"memoryMaxBytes,omitempty"`
	KeyShare           float64  `json:"keyShare,omitempty"`
}

// Redis is the shared Redis: one address for a standalone server, several
// for a Cluster, or the Sentinels' with MasterName.
type Redis struct {
	Addrs      []string `json:"addrs,omitempty"`
	MasterName string   `json:"masterName,omitempty"`
	Username   string   `json:"username,omitempty"`
	Password   string   `json:"password,omitempty"`
	DB         int      `json:"db,omitempty"`
	TLS        bool     `json:"tls,omitempty"`
	Timeout    string   `json:"timeout,omitempty"`
	KeyPrefix  string   `json:"keyPrefix,omitempty"`
}

// CreateConfig returns the plugin's default configuration: every field
// empty, so the model's defaults apply.
func CreateConfig() *Config {
	return &Config{}
}

// model converts c to replayguard's configuration, with defaults filled in
// and validated, adding the plugin's own limits. Errors name fields as
// the plugin's options are named.
func (c *Config) model() (replayguard.Config, redisstore.Config, error) {
	d := &durations{}
	m := c.guardConfig(d)
	rc := c.redisConfig(d)
	errs := d.errs
	m = m.WithDefaults()
	rc = rc.WithDefaults()
	if err := m.Validate(); err != nil {
		errs = append(errs, camelFields(err))
	}
	if m.UsesRedis() || len(rc.Addrs) > 0 {
		if err := rc.Validate(); err != nil {
			errs = append(errs, camelFields(err))
		}
	}
	if m.UsesRedis() && len(rc.Addrs) == 0 {
		errs = append(errs, errors.New("config: redis.addrs: required when a store is \"redis\""))
	}
	if m.Nonce.Store == replayguard.StoreDisk {
		errs = append(errs, errors.New("config: nonce.store: \"disk\" is not available in the Traefik plugin, whose interpreter cannot load an embedded database; use \"redis\" for nonces that outlive a restart"))
	}
	if m.Idempotency.Store == replayguard.StoreDisk {
		errs = append(errs, errors.New("config: idempotency.store: \"disk\" is not available in the Traefik plugin, whose interpreter cannot load an embedded database; use \"redis\" for records that outlive a restart"))
	}
	if m.Idempotency.Store == replayguard.StorePostgres {
		errs = append(errs, errors.New("config: idempotency.store: \"postgres\" is not available in the Traefik plugin; use \"redis\" to share records with other instances"))
	}
	if len(errs) > 0 {
		return replayguard.Config{}, redisstore.Config{}, errors.Join(errs...)
	}
	return m, rc, nil
}

// durations parses the options' durations, keeping every error.
type durations struct{ errs []error }

func (d *durations) parse(field, s string) replayguard.Duration {
	if s == "" {
		return 0
	}
	v, err := replayguard.ParseDuration(s)
	if err != nil {
		d.errs = append(d.errs, fmt.Errorf("config: %s: %w", field, err))
	}
	return replayguard.Duration(v)
}

// guardConfig is the Guard's configuration the options describe.
func (c *Config) guardConfig(d *durations) replayguard.Config {
	m := replayguard.Config{
		MaxBodyBytes: c.MaxBodyBytes,
		Scheme:       c.Scheme,
		HMAC: replayguard.HMACConfig{
			KeyIDHeader:     c.HMAC.KeyIDHeader,
			TimestampHeader: c.HMAC.TimestampHeader,
			NonceHeader:     c.HMAC.NonceHeader,
			SignatureHeader: c.HMAC.SignatureHeader,
		},
		JWT: replayguard.JWTConfig{
			Header:   c.JWT.Header,
			Prefix:   c.JWT.Prefix,
			JWKSURL:  c.JWT.JWKSURL,
			JWKSID:   c.JWT.JWKSID,
			Issuer:   c.JWT.Issuer,
			Audience: c.JWT.Audience,
			Leeway:   d.parse("jwt.leeway", c.JWT.Leeway),
			Bind:     c.JWT.Bind,
			DPoP:     c.JWT.DPoP,
		},
		RFC9421: replayguard.RFC9421Config{RequiredComponents: c.RFC9421.RequiredComponents},
		Timestamp: replayguard.TimestampConfig{
			Tolerance:  d.parse("timestamp.tolerance", c.Timestamp.Tolerance),
			FutureSkew: d.parse("timestamp.futureSkew", c.Timestamp.FutureSkew),
		},
		Nonce: replayguard.NonceConfig{
			Store:             c.Nonce.Store,
			Mode:              c.Nonce.Mode,
			Capacity:          c.Nonce.Capacity,
			FalsePositiveRate: c.Nonce.FalsePositiveRate,
			LocalShield:       c.Nonce.LocalShield,
			MaxEntries:        c.Nonce.MaxEntries,
			MaxSubFilters:     c.Nonce.MaxSubFilters,
			KeyShare:          c.Nonce.KeyShare,
		},
		Idempotency: replayguard.IdempotencyConfig{
			Enabled:            c.Idempotency.Enabled,
			Required:           c.Idempotency.Required,
			Methods:            c.Idempotency.Methods,
			TTL:                d.parse("idempotency.ttl", c.Idempotency.TTL),
			Lease:              d.parse("idempotency.lease", c.Idempotency.Lease),
			MaxResponseBytes:   c.Idempotency.MaxResponseBytes,
			StoreServerErrors:  c.Idempotency.StoreServerErrors,
			Store:              c.Idempotency.Store,
			DeriveKey:          c.Idempotency.DeriveKey,
			DeriveWindow:       d.parse("idempotency.deriveWindow", c.Idempotency.DeriveWindow),
			FingerprintHeaders: c.Idempotency.FingerprintHeaders,
			MemoryMaxBytes:     c.Idempotency.MemoryMaxBytes,
			KeyShare:           c.Idempotency.KeyShare,
		},
		FailMode: c.FailMode,
	}
	for _, k := range c.Keys {
		m.Keys = append(m.Keys, replayguard.KeyConfig{
			ID: k.ID, Secrets: k.Secrets, Algorithm: k.Algorithm, PublicKeyFile: k.PublicKeyFile, JWK: k.JWK,
		})
	}
	return m
}

// redisConfig is the redis section of the options.
func (c *Config) redisConfig(d *durations) redisstore.Config {
	return redisstore.Config{
		Addrs:      c.Redis.Addrs,
		MasterName: c.Redis.MasterName,
		Username:   c.Redis.Username,
		Password:   c.Redis.Password,
		DB:         c.Redis.DB,
		TLS:        c.Redis.TLS,
		Timeout:    d.parse("redis.timeout", c.Redis.Timeout),
		KeyPrefix:  c.Redis.KeyPrefix,
	}
}

// camelFields rewrites the field paths of the model's validation errors
// ("config: idempotency.max_response_bytes: …") into the plugin's names
// ("config: idempotency.maxResponseBytes: …"). Only the path before the
// message is touched, never a quoted value.
func camelFields(err error) error {
	lines := strings.Split(err.Error(), "\n")
	for i, line := range lines {
		rest, ok := strings.CutPrefix(line, "config: ")
		if !ok {
			continue
		}
		field, msg, ok := strings.Cut(rest, ": ")
		if !ok {
			continue
		}
		lines[i] = "config: " + camel(field) + ": " + msg
	}
	return errors.New(strings.Join(lines, "\n"))
}

// camel turns snake_case words into camelCase: key_id_header → keyIdHeader.
func camel(s string) string {
	var b strings.Builder
	up := false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '_':
			up = true
			continue
		case up && ch >= 'a' && ch <= 'z':
			ch -= 'a' - 'A'
		}
		up = false
		b.WriteByte(ch)
	}
	return b.String()
}
