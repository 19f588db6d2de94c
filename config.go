package replayguard

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/replayguard/replayguard/confval"

	"github.com/replayguard/replayguard/idempotency"
	"github.com/replayguard/replayguard/nonce"
	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/timestamp"
)

// Defaults of the configuration model.
const (
	DefaultMaxBodyBytes      = 1 << 20
	DefaultScheme            = "hmac"
	DefaultNonceCapacity     = 1_000_000
	DefaultFalsePositiveRate = 1e-9
	DefaultIdempotencyTTL    = idempotency.DefaultTTL
	DefaultLease             = idempotency.DefaultLease
	DefaultMaxResponseBytes  = idempotency.DefaultMaxResponseBytes
	DefaultDeriveWindow      = idempotency.DefaultDeriveWindow
	DefaultMaxSubFilters     = 4
	DefaultNonceMaxEntries   = 10_000_000
	DefaultMemoryMaxBytes    = idempotency.DefaultMemoryMaxBytes
)

// Store and mode names.
const (
	StoreMemory   = "memory"
	StoreRedis    = "redis"
	StorePostgres = "postgres"
	// StoreDisk is the durable embedded store (package disk); the
	// binary's default.
	StoreDisk = "disk"

	ModeExact = "exact"
	ModeBloom = "bloom"

	FailClosed = "closed"
	FailOpen   = "open"
)

// Config configures a Guard: what New reads, and nothing else. It is the
// one configuration model of every shape: the binary's YAML file
// (config.File) inlines it beside the gateway's own sections, the Caddy
// module's JSON embeds it, the Traefik plugin's options mirror it. Field
// names are a contract (docs/configuration.md).
type Config struct {
	// MaxBodyBytes bounds the request body. Default 1 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes" json:"max_body_bytes,omitempty"`
	// Scheme selects the signature scheme. Default "hmac".
	Scheme string `yaml:"scheme" json:"scheme,omitempty"`
	// Keys are the verification keys.
	Keys []KeyConfig `yaml:"keys" json:"keys,omitempty"`
	// HMAC configures the hmac scheme's header names.
	HMAC HMACConfig `yaml:"hmac" json:"hmac,omitempty"`
	// JWT configures the jwt scheme.
	JWT JWTConfig `yaml:"jwt" json:"jwt,omitempty"`
	// RFC9421 configures the rfc9421 scheme.
	RFC9421 RFC9421Config `yaml:"rfc9421" json:"rfc9421,omitempty"`
	// Timestamp is the freshness window.
	Timestamp TimestampConfig `yaml:"timestamp" json:"timestamp,omitempty"`
	// Nonce configures replay protection.
	Nonce NonceConfig `yaml:"nonce" json:"nonce,omitempty"`
	// Idempotency configures the dedupe layer.
	Idempotency IdempotencyConfig `yaml:"idempotency" json:"idempotency,omitempty"`
	// FailMode is "closed" (default: 503 when a store fails) or "open".
	FailMode string `yaml:"fail_mode" json:"fail_mode,omitempty"`
}

// KeyConfig is one key.
type KeyConfig struct {
	// ID names the key on the wire (X-Key-Id, kid, keyid).
	ID string `yaml:"id" json:"id"`
	// Secrets of a symmetric key; several during a rotation. A plain string
	// is its UTF-8 bytes; "base64:…" is decoded.
	Secrets []string `yaml:"secrets" json:"secrets,omitempty"`
	// Algorithm is the one algorithm an asymmetric key is used with.
	Algorithm string `yaml:"algorithm" json:"algorithm,omitempty"`
	// PublicKeyFile is a PEM public key.
	PublicKeyFile string `yaml:"public_key_file" json:"public_key_file,omitempty"`
	// JWK is a public key as a JSON Web Key.
	JWK map[string]any `yaml:"jwk" json:"jwk,omitempty"`
}

// HMACConfig names the hmac scheme's headers; empty fields keep defaults.
type HMACConfig struct {
	// KeyIDHeader carries the key id. Default X-Key-Id.
	KeyIDHeader string `yaml:"key_id_header" json:"key_id_header,omitempty"`
	// TimestampHeader carries the unix timestamp. Default X-Timestamp.
	TimestampHeader string `yaml:"timestamp_header" json:"timestamp_header,omitempty"`
	// NonceHeader carries the nonce. Default X-Nonce.
	NonceHeader string `yaml:"nonce_header" json:"nonce_header,omitempty"`
	// SignatureHeader carries the v1= signatures. Default X-Signature.
	SignatureHeader string `yaml:"signature_header" json:"signature_header,omitempty"`
}

// JWTConfig configures the jwt scheme.
type JWTConfig struct {
	// Header carries the token. Default Authorization.
	Header string `yaml:"header" json:"header,omitempty"`
	// Prefix precedes the token in Header. Default Bearer.
	Prefix string `yaml:"prefix" json:"prefix,omitempty"`
	// JWKSURL is fetched for keys by kid (cached). Default none.
	JWKSURL string `yaml:"jwks_url" json:"jwks_url,omitempty"`
	// JWKSID is the identity of every token verified with a key fetched
	// from JWKSURL: the key set is one key entry, whatever kid a token
	// names. Default "jwks".
	JWKSID string `yaml:"jwks_id" json:"jwks_id,omitempty"`
	// Issuer, when set, must equal the iss claim.
	Issuer string `yaml:"issuer" json:"issuer,omitempty"`
	// Audience, when set, must be in the aud claim.
	Audience string `yaml:"audience" json:"audience,omitempty"`
	// Leeway is allowed on exp and nbf. Default 30s.
	Leeway Duration `yaml:"leeway" json:"leeway,omitempty"`
	// Bind lists the request-binding claims required. Default htm, htu, bsh.
	Bind []string `yaml:"bind" json:"bind,omitempty"`
	// DPoP accepts and verifies RFC 9449 proofs. Default false.
	DPoP bool `yaml:"dpop" json:"dpop,omitempty"`
}

// RFC9421Config configures the rfc9421 scheme.
type RFC9421Config struct {
	// RequiredComponents must all be covered by the signature. Default
	// @method, @target-uri, and content-digest when a body is present.
	RequiredComponents []string `yaml:"required_components" json:"required_components,omitempty"`
}

// TimestampConfig is the freshness window.
type TimestampConfig struct {
	// Tolerance is how old a signed timestamp may be. Default 5m.
	Tolerance Duration `yaml:"tolerance" json:"tolerance,omitempty"`
	// FutureSkew is how far ahead a signed timestamp may be. Default 5m.
	FutureSkew Duration `yaml:"future_skew" json:"future_skew,omitempty"`
}

// NonceConfig configures replay protection.
type NonceConfig struct {
	// Store is "memory" (the library's default), "disk" (the binary's
	// default) or "redis".
	Store string `yaml:"store" json:"store,omitempty"`
	// Mode is "exact" (default) or "bloom".
	Mode string `yaml:"mode" json:"mode,omitempty"`
	// Capacity is the number of nonces a Bloom store is sized for within
	// one window. Default 1,000,000.
	Capacity int `yaml:"capacity" json:"capacity,omitempty"`
	// FalsePositiveRate is the Bloom store's target. Default 1e-9.
	FalsePositiveRate float64 `yaml:"false_positive_rate" json:"false_positive_rate,omitempty"`
	// LocalShield puts an in-process tier in front of a shared store.
	LocalShield bool `yaml:"local_shield" json:"local_shield,omitempty"`
	// MaxEntries caps the exact memory store; at the cap new nonces fail
	// with store_unavailable rather than evict live records, and each key
	// entry holds at most its share of it (KeyShare). A record holds at
	// most nonce.MemoryEntryBytes of heap as the store fills. Default
	// 10,000,000 (at most about 1.1 GB of live heap); -1: no cap, and no
	// shares.
	MaxEntries int `yaml:"max_entries" json:"max_entries,omitempty"`
	// MaxSubFilters is the most sub-filters a partition of the memory
	// Bloom store grows to, holding up to 2^n - 1 times its share of
	// Capacity; past it new nonces fail with store_unavailable. Default 4.
	MaxSubFilters int `yaml:"max_subfilters" json:"max_subfilters,omitempty"`
	// KeyShare is the fraction of the memory store's bound (MaxEntries, or
	// the Bloom store's most entries per bucket) one key entry may hold;
	// past it that key gets quota_exceeded. Default 0: 1 / the number of
	// key entries (the jwks_url key set counts as one).
	KeyShare float64 `yaml:"key_share" json:"key_share,omitempty"`
}

// IdempotencyConfig configures the dedupe layer.
type IdempotencyConfig struct {
	// Enabled turns the dedupe step on. Default true.
	Enabled *bool `yaml:"enabled" json:"enabled,omitempty"`
	// Required answers 400 to a covered request without a key. Default true.
	Required *bool `yaml:"required" json:"required,omitempty"`
	// Methods are the covered methods. Default POST, PATCH.
	Methods []string `yaml:"methods" json:"methods,omitempty"`
	// TTL is how long a completed response is kept. Default 24h.
	TTL Duration `yaml:"ttl" json:"ttl,omitempty"`
	// Lease is how long a running request holds its key without a
	// renewal; renewed while the upstream runs. Default 30s.
	Lease Duration `yaml:"lease" json:"lease,omitempty"`
	// MaxResponseBytes bounds a stored body; larger responses pass
	// through unstored. Default 1 MiB.
	MaxResponseBytes int64 `yaml:"max_response_bytes" json:"max_response_bytes,omitempty"`
	// StoreServerErrors keeps 5xx responses (Stripe). Default false.
	StoreServerErrors bool `yaml:"store_server_errors" json:"store_server_errors,omitempty"`
	// Store is "memory" (the library's default), "disk" (the binary's
	// default), "redis" or "postgres".
	Store string `yaml:"store" json:"store,omitempty"`
	// DeriveKey is "off" (default) or "fingerprint": derive a key from
	// principal and fingerprint when a covered request has none.
	DeriveKey string `yaml:"derive_key" json:"derive_key,omitempty"`
	// DeriveWindow is how long a derived key's record lives. Default 5m.
	DeriveWindow Duration `yaml:"derive_window" json:"derive_window,omitempty"`
	// FingerprintHeaders are request headers that join method, target and
	// body in the fingerprint. Default none.
	FingerprintHeaders []string `yaml:"fingerprint_headers" json:"fingerprint_headers,omitempty"`
	// MemoryMaxBytes bounds the live heap the memory store's records
	// hold (keys, stored responses and the store's own structures, as the
	// allocator sizes them); past it new records fail with
	// store_unavailable. Default 256 MiB.
	MemoryMaxBytes int64 `yaml:"memory_max_bytes" json:"memory_max_bytes,omitempty"`
	// KeyShare is the fraction of MemoryMaxBytes one key entry may hold;
	// past it that key gets quota_exceeded. Default 0: 1 / the number of
	// key entries (the jwks_url key set counts as one).
	KeyShare float64 `yaml:"key_share" json:"key_share,omitempty"`
}

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Scheme == "" {
		c.Scheme = DefaultScheme
	}
	if c.Timestamp.Tolerance == 0 {
		c.Timestamp.Tolerance = Duration(timestamp.DefaultTolerance)
	}
	if c.Timestamp.FutureSkew == 0 {
		c.Timestamp.FutureSkew = Duration(timestamp.DefaultFutureSkew)
	}
	c.Nonce = c.Nonce.withDefaults()
	c.Idempotency = c.Idempotency.withDefaults()
	if c.FailMode == "" {
		c.FailMode = FailClosed
	}
	return c
}

func (n NonceConfig) withDefaults() NonceConfig {
	if n.Store == "" {
		n.Store = StoreMemory
	}
	if n.Mode == "" {
		n.Mode = ModeExact
	}
	if n.Capacity == 0 {
		n.Capacity = DefaultNonceCapacity
	}
	if n.FalsePositiveRate == 0 {
		n.FalsePositiveRate = DefaultFalsePositiveRate
	}
	if n.MaxSubFilters == 0 {
		n.MaxSubFilters = DefaultMaxSubFilters
	}
	if n.MaxEntries == 0 {
		n.MaxEntries = DefaultNonceMaxEntries
	}
	return n
}

func (id IdempotencyConfig) withDefaults() IdempotencyConfig {
	if id.Enabled == nil {
		id.Enabled = boolPtr(true)
	}
	if id.Required == nil {
		id.Required = boolPtr(true)
	}
	if id.Methods == nil {
		id.Methods = []string{http.MethodPost, http.MethodPatch}
	}
	if id.TTL == 0 {
		id.TTL = Duration(DefaultIdempotencyTTL)
	}
	if id.Lease == 0 {
		id.Lease = Duration(DefaultLease)
	}
	if id.MaxResponseBytes == 0 {
		id.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if id.Store == "" {
		id.Store = StoreMemory
	}
	if id.DeriveKey == "" {
		id.DeriveKey = "off"
	}
	if id.DeriveWindow == 0 {
		id.DeriveWindow = Duration(DefaultDeriveWindow)
	}
	if id.MemoryMaxBytes == 0 {
		id.MemoryMaxBytes = DefaultMemoryMaxBytes
	}
	return id
}

func boolPtr(b bool) *bool { return &b }

// FieldError names the configuration field that is wrong.
type FieldError = confval.FieldError

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// wrapField names field as the place of err, keeping err in the chain.
func wrapField(field string, err error) error {
	return &FieldError{Field: field, Err: err}
}

// Validate checks a configuration (after WithDefaults) and returns every
// problem found, each naming its field.
func (c Config) Validate() error {
	var errs []error
	if c.MaxBodyBytes < 0 {
		errs = append(errs, fieldErr("max_body_bytes", "must be positive"))
	}
	if v, ok := schemes[c.Scheme]; ok {
		errs = append(errs, v.validate(c)...)
	} else {
		errs = append(errs, fieldErr("scheme", "unknown scheme %q (supported: %s)", c.Scheme, strings.Join(schemeNames(), ", ")))
	}
	errs = append(errs, c.validateKeys()...)
	errs = append(errs, c.Timestamp.validate()...)
	errs = append(errs, c.Nonce.validate()...)
	errs = append(errs, c.Idempotency.validate()...)
	if err := oneOf("fail_mode", c.FailMode, FailClosed, FailOpen); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// validateKeys checks the key entries: ids present and unique, secrets
// decodable and, for the schemes that set no minimum of their own, long
// enough.
func (c Config) validateKeys() []error {
	var errs []error
	if len(c.Keys) == 0 && (c.Scheme != "jwt" || c.JWT.JWKSURL == "") {
		errs = append(errs, fieldErr("keys", "at least one key is required (or jwt.jwks_url with scheme jwt)"))
	}
	seen := map[string]bool{}
	for i, k := range c.Keys {
		f := fmt.Sprintf("keys[%d]", i)
		if k.ID == "" {
			errs = append(errs, fieldErr(f+".id", "required"))
		} else if seen[k.ID] {
			errs = append(errs, fieldErr(f+".id", "duplicate id %q", k.ID))
		}
		seen[k.ID] = true
		for j, s := range k.Secrets {
			b, err := signature.ParseSecret(s)
			if err != nil {
				errs = append(errs, wrapField(fmt.Sprintf("%s.secrets[%d]", f, j), err))
			} else if ownSecretMinimum(c.Scheme) {
				if err := checkSecretLength(c.Scheme, fmt.Sprintf("%s.secrets[%d]", f, j), b); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errs
}

func (t TimestampConfig) validate() []error {
	var errs []error
	if t.Tolerance < 0 {
		errs = append(errs, fieldErr("timestamp.tolerance", "must be positive"))
	}
	if t.FutureSkew < 0 {
		errs = append(errs, fieldErr("timestamp.future_skew", "must be positive"))
	}
	if w := (timestamp.Window{Tolerance: t.Tolerance.D(), FutureSkew: t.FutureSkew.D()}); w.Tolerance >= 0 && w.FutureSkew >= 0 {
		if err := w.Validate(); err != nil {
			field := "timestamp.future_skew"
			if w.Tolerance > timestamp.MaxSpan {
				field = "timestamp.tolerance"
			}
			errs = append(errs, &FieldError{Field: field, Err: err})
		}
	}
	return errs
}

func (n NonceConfig) validate() []error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(oneOf("nonce.store", n.Store, StoreMemory, StoreDisk, StoreRedis))
	add(oneOf("nonce.mode", n.Mode, ModeExact, ModeBloom))
	if n.Store == StoreDisk && n.Mode == ModeBloom {
		add(fieldErr("nonce.store", "mode bloom has no disk form: use store memory or redis with bloom, or mode exact with disk"))
	}
	if n.Capacity < 0 {
		add(fieldErr("nonce.capacity", "must be positive"))
	}
	if n.FalsePositiveRate <= 0 || n.FalsePositiveRate >= 1 {
		add(fieldErr("nonce.false_positive_rate", "must lie strictly between 0 and 1, got %g", n.FalsePositiveRate))
	}
	if n.MaxEntries < -1 {
		add(fieldErr("nonce.max_entries", "must be positive, or -1 for no cap"))
	}
	if n.MaxSubFilters < 1 || n.MaxSubFilters > 24 {
		add(fieldErr("nonce.max_subfilters", "must lie between 1 and 24, got %d", n.MaxSubFilters))
	}
	add(validShare("nonce.key_share", n.KeyShare))
	return errs
}

func (id IdempotencyConfig) validate() []error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(validShare("idempotency.key_share", id.KeyShare))
	if id.MemoryMaxBytes < 0 {
		add(fieldErr("idempotency.memory_max_bytes", "must be positive"))
	}
	add(oneOf("idempotency.store", id.Store, StoreMemory, StoreDisk, StoreRedis, StorePostgres))
	add(oneOf("idempotency.derive_key", id.DeriveKey, "off", "fingerprint"))
	for i, m := range id.Methods {
		if m == "" || strings.ToUpper(m) != m {
			add(fieldErr(fmt.Sprintf("idempotency.methods[%d]", i), "want an upper-case method name, got %q", m))
		}
	}
	for _, d := range []struct {
		field string
		d     Duration
	}{{"idempotency.ttl", id.TTL}, {"idempotency.lease", id.Lease}, {"idempotency.derive_window", id.DeriveWindow}} {
		if d.d < 0 {
			add(fieldErr(d.field, "must be positive"))
		}
	}
	if id.MaxResponseBytes < 0 {
		add(fieldErr("idempotency.max_response_bytes", "must be positive"))
	}
	return errs
}

func validShare(field string, share float64) error {
	if !(share >= 0 && share <= 1) {
		return fieldErr(field, "want a fraction between 0 (the default: 1 / the number of key entries) and 1, got %g", share)
	}
	return nil
}

// KeyEntries is the number of key entries that share a bounded memory
// store: each of keys, and the key set fetched from jwt.jwks_url as one.
// At least 1.
func (c Config) KeyEntries() int {
	n := len(c.Keys)
	if c.Scheme == "jwt" && c.JWT.JWKSURL != "" {
		n++
	}
	if n < 1 {
		n = 1
	}
	return n
}

// KeyShare returns the fraction of a bounded memory store one key entry
// may hold: share when set, else 1/KeyEntries().
func (c Config) KeyShare(share float64) float64 {
	if share > 0 {
		return share
	}
	return 1 / float64(c.KeyEntries())
}

// NonceMemoryOptions returns the options of the exact memory nonce store c
// describes: its cap and, under a cap, each key entry's share of it.
func (c Config) NonceMemoryOptions() []nonce.MemoryOption {
	limit := c.Nonce.MaxEntries
	if limit < 0 {
		return []nonce.MemoryOption{nonce.WithMaxEntries(0)}
	}
	if limit == 0 {
		limit = DefaultNonceMaxEntries
	}
	opts := []nonce.MemoryOption{nonce.WithMaxEntries(limit)}
	if n, ok := c.shareOf(c.Nonce.KeyShare, int64(limit)); ok {
		opts = append(opts, nonce.WithKeyShare(int(n)))
	}
	return opts
}

// IdempotencyMemoryOptions returns the options of the memory idempotency
// store c describes: its bound and each key entry's share of it.
func (c Config) IdempotencyMemoryOptions() []idempotency.MemoryOption {
	limit := c.Idempotency.MemoryMaxBytes
	if limit <= 0 {
		limit = DefaultMemoryMaxBytes
	}
	opts := []idempotency.MemoryOption{idempotency.WithMemoryMaxBytes(limit)}
	if n, ok := c.shareOf(c.Idempotency.KeyShare, limit); ok {
		opts = append(opts, idempotency.WithMemoryKeyShare(n))
	}
	return opts
}

// shareOf returns one key entry's part of limit under the configured
// share (see KeyShare), at least 1; false when one key may hold it all.
func (c Config) shareOf(share float64, limit int64) (int64, bool) {
	share = c.KeyShare(share)
	if share >= 1 {
		return 0, false
	}
	n := int64(share * float64(limit))
	if n < 1 {
		n = 1
	}
	return n, true
}

func oneOf(field, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fieldErr(field, "%q is not one of %s", v, strings.Join(allowed, ", "))
}

// DefaultTrustedProxies returns the default of trusted_proxies: loopback.
func DefaultTrustedProxies() []string { return []string{"127.0.0.0/8", "::1/128"} }

// ParseTrustedProxies parses the peers a forward-auth endpoint trusts to
// describe a request (the binary's trusted_proxies): each entry is a CIDR,
// or an IP standing for itself alone. Empty means DefaultTrustedProxies.
// Errors name the entry (trusted_proxies[i]).
func ParseTrustedProxies(entries []string) ([]*net.IPNet, error) {
	if len(entries) == 0 {
		entries = DefaultTrustedProxies()
	}
	nets := make([]*net.IPNet, 0, len(entries))
	var errs []error
	for i, e := range entries {
		s := strings.TrimSpace(e)
		if strings.Contains(s, "/") {
			_, n, err := net.ParseCIDR(s)
			if err != nil {
				errs = append(errs, fieldErr(fmt.Sprintf("trusted_proxies[%d]", i), "want a CIDR or an IP address, got %q", e))
				continue
			}
			nets = append(nets, n)
			continue
		}
		ip := net.ParseIP(s)
		if ip == nil {
			errs = append(errs, fieldErr(fmt.Sprintf("trusted_proxies[%d]", i), "want a CIDR or an IP address, got %q", e))
			continue
		}
		bits := 8 * net.IPv6len
		if v4 := ip.To4(); v4 != nil {
			ip, bits = v4, 8*net.IPv4len
		}
		nets = append(nets, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return nets, nil
}

// MinSecretBytes is the shortest secret a configuration may give an HMAC
// key (schemes hmac and rfc9421, the webhook presets), counted after
// decoding. HS256/384/512 keys of the jwt scheme need more: as many bytes
// as the hash's output (RFC 7518 §3.2). The minimum is a configuration
// rule; the signature package verifies with whatever key it is handed, so
// published test vectors with short keys still run there.
const MinSecretBytes = 16

// checkSecretLength refuses a secret shorter than MinSecretBytes under a
// scheme it applies to. The webhook presets' secrets are chosen by the
// vendor, so the remedy named is rotating it there.
func checkSecretLength(scheme, field string, b []byte) error {
	switch {
	case len(b) >= MinSecretBytes:
		return nil
	case scheme == "" || scheme == "hmac" || scheme == "rfc9421":
		return fieldErr(field, "secret is %d bytes, at least %d required", len(b), MinSecretBytes)
	}
	return fieldErr(field, "secret is %d bytes, at least %d required; the %s secret is issued by the vendor: rotate it in the vendor's dashboard for a longer one", len(b), MinSecretBytes, scheme)
}

// ownSecretMinimum reports the schemes whose secrets Config.Validate checks
// against MinSecretBytes as ParseSecret reads them; the webhook presets
// decode theirs in webhookKeys, the jwt scheme has its own minimum.
func ownSecretMinimum(scheme string) bool {
	return scheme == "" || scheme == "hmac" || scheme == "rfc9421"
}

// SignatureKeys converts the configured keys for the signature package.
func (c Config) SignatureKeys() ([]signature.Key, error) {
	keys := make([]signature.Key, 0, len(c.Keys))
	for i, k := range c.Keys {
		sk := signature.Key{ID: k.ID, Algorithm: k.Algorithm}
		for j, s := range k.Secrets {
			field := fmt.Sprintf("keys[%d].secrets[%d]", i, j)
			b, err := signature.ParseSecret(s)
			if err != nil {
				return nil, wrapField(field, err)
			}
			if ownSecretMinimum(c.Scheme) {
				if err := checkSecretLength(c.Scheme, field, b); err != nil {
					return nil, err
				}
			}
			sk.Secrets = append(sk.Secrets, b)
		}
		keys = append(keys, sk)
	}
	return keys, nil
}

// UsesDisk reports whether a store of c is "disk".
func (c Config) UsesDisk() bool {
	return c.Nonce.Store == StoreDisk || (c.Idempotency.Store == StoreDisk && (c.Idempotency.Enabled == nil || *c.Idempotency.Enabled))
}

// UsesRedis reports whether a store of c is "redis".
func (c Config) UsesRedis() bool {
	return c.Nonce.Store == StoreRedis || c.Idempotency.Store == StoreRedis
}
