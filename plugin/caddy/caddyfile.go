package replayguardcaddy

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/disk"
	"github.com/replayguard/replayguard/redisstore"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("replayguard", parseCaddyfile)
	// After rewrite, uri and try_files (the signature is checked against
	// the request as sent anyway), before every authentication directive
	// and everything that answers or proxies.
	httpcaddyfile.RegisterDirectiveOrder("replayguard", httpcaddyfile.Before, "basic_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	if err := m.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return m, nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Each
// subdirective is the field of the same name in the YAML configuration:
//
//	replayguard [<matcher>] {
//		max_body_bytes <size>
//		scheme         hmac|jwt|rfc9421|standard-webhooks|stripe|github|slack|shopify
//		key <id> [<secret>...]
//		key <id> {
//			secrets         <secret>...
//			algorithm       <alg>
//			public_key_file <path>
//			jwk             <json>
//		}
//		hmac {
//			key_id_header    <name>
//			timestamp_header <name>
//			nonce_header     <name>
//			signature_header <name>
//		}
//		jwt {
//			header   <name>
//			prefix   <prefix>
//			jwks_url <url>
//			jwks_id  <id>
//			issuer   <iss>
//			audience <aud>
//			leeway   <duration>
//			bind     htm|htu|bsh...
//			dpop     [true|false]
//		}
//		rfc9421 {
//			required_components <component>...
//		}
//		timestamp {
//			tolerance   <duration>
//			future_skew <duration>
//		}
//		nonce {
//			store               memory|disk|redis
//			mode                exact|bloom
//			capacity            <n>
//			false_positive_rate <rate>
//			local_shield        [true|false]
//			max_entries         <n>
//			max_subfilters      <n>
//			key_share           <fraction>
//		}
//		idempotency {
//			enabled             [true|false]
//			required            [true|false]
//			methods             <method>...
//			ttl                 <duration>
//			lease               <duration>
//			max_response_bytes  <size>
//			store_server_errors [true|false]
//			store               memory|disk|redis|postgres
//			derive_key          off|fingerprint
//			derive_window       <duration>
//			fingerprint_headers <header>...
//			memory_max_bytes    <size>
//			key_share           <fraction>
//		}
//		redis {
//			addrs       <host:port>...
//			master_name <name>
//			username    <user>
//			password    <password>
//			db          <n>
//			tls         [true|false]
//			timeout     <duration>
//			key_prefix  <prefix>
//			tagging     key|principal
//		}
//		postgres {
//			dsn     <dsn>
//			timeout <duration>
//		}
//		disk {
//			path          <directory>
//			fsync         [true|false]
//			max_bytes     <size>
//			key_share     <fraction>
//			lock_timeout  <duration>
//			timeout       <duration>
//			reap_interval <duration>
//		}
//		fail_mode closed|open
//	}
//
// "key" may be repeated, one per entry of keys. Durations are Go durations
// or whole days ("7d"); sizes are bytes or humanized ("1MiB").
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	c := &h.Config
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "max_body_bytes":
			c.MaxBodyBytes, err = sizeArg(d)
		case "scheme":
			c.Scheme, err = stringArg(d)
		case "key":
			err = parseKey(d, c)
		case "hmac":
			err = block(d, "hmac", map[string]func() error{
				"key_id_header":    func() (err error) { c.HMAC.KeyIDHeader, err = stringArg(d); return },
				"timestamp_header": func() (err error) { c.HMAC.TimestampHeader, err = stringArg(d); return },
				"nonce_header":     func() (err error) { c.HMAC.NonceHeader, err = stringArg(d); return },
				"signature_header": func() (err error) { c.HMAC.SignatureHeader, err = stringArg(d); return },
			})
		case "jwt":
			err = parseJWT(d, &c.JWT)
		case "rfc9421":
			err = block(d, "rfc9421", map[string]func() error{
				"required_components": func() (err error) { c.RFC9421.RequiredComponents, err = listArg(d); return },
			})
		case "timestamp":
			t := &c.Timestamp
			err = block(d, "timestamp", map[string]func() error{
				"tolerance":   func() (err error) { t.Tolerance, err = durationArg(d); return },
				"future_skew": func() (err error) { t.FutureSkew, err = durationArg(d); return },
			})
		case "nonce":
			err = parseNonce(d, &c.Nonce)
		case "idempotency":
			err = parseIdempotency(d, &c.Idempotency)
		case "redis":
			err = parseRedis(d, &h.Redis)
		case "postgres":
			p := &h.Postgres
			err = block(d, "postgres", map[string]func() error{
				"dsn":     func() (err error) { p.DSN, err = stringArg(d); return },
				"timeout": func() (err error) { p.Timeout, err = durationArg(d); return },
			})
		case "disk":
			err = parseDisk(d, &h.Disk)
		case "fail_mode":
			c.FailMode, err = enumArg(d, replayguard.FailClosed, replayguard.FailOpen)
		default:
			return d.Errf("replayguard: unknown subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseJWT reads the jwt block.
func parseJWT(d *caddyfile.Dispenser, j *replayguard.JWTConfig) error {
	return block(d, "jwt", map[string]func() error{
		"header":   func() (err error) { j.Header, err = stringArg(d); return },
		"prefix":   func() (err error) { j.Prefix, err = stringArg(d); return },
		"jwks_url": func() (err error) { j.JWKSURL, err = stringArg(d); return },
		"jwks_id":  func() (err error) { j.JWKSID, err = stringArg(d); return },
		"issuer":   func() (err error) { j.Issuer, err = stringArg(d); return },
		"audience": func() (err error) { j.Audience, err = stringArg(d); return },
		"leeway":   func() (err error) { j.Leeway, err = durationArg(d); return },
		"bind": func() (err error) {
			j.Bind, err = listArg(d, "htm", "htu", "bsh")
			return
		},
		"dpop": func() (err error) { j.DPoP, err = boolArg(d); return },
	})
}

// parseNonce reads the nonce block.
func parseNonce(d *caddyfile.Dispenser, n *replayguard.NonceConfig) error {
	return block(d, "nonce", map[string]func() error{
		"store": func() (err error) {
			n.Store, err = enumArg(d, replayguard.StoreMemory, replayguard.StoreDisk, replayguard.StoreRedis)
			return
		},
		"mode":                func() (err error) { n.Mode, err = enumArg(d, replayguard.ModeExact, replayguard.ModeBloom); return },
		"capacity":            func() (err error) { n.Capacity, err = intArg(d); return },
		"false_positive_rate": func() (err error) { n.FalsePositiveRate, err = rateArg(d); return },
		"local_shield":        func() (err error) { n.LocalShield, err = boolArg(d); return },
		"max_entries":         func() (err error) { n.MaxEntries, err = intArg(d); return },
		"max_subfilters":      func() (err error) { n.MaxSubFilters, err = intArg(d); return },
		"key_share":           func() (err error) { n.KeyShare, err = shareArg(d); return },
	})
}

// parseRedis reads the redis block.
func parseRedis(d *caddyfile.Dispenser, rc *redisstore.Section) error {
	return block(d, "redis", map[string]func() error{
		"addrs":       func() (err error) { rc.Addrs, err = listArg(d); return },
		"master_name": func() (err error) { rc.MasterName, err = stringArg(d); return },
		"username":    func() (err error) { rc.Username, err = stringArg(d); return },
		"password":    func() (err error) { rc.Password, err = stringArg(d); return },
		"db":          func() (err error) { rc.DB, err = intArg(d); return },
		"tls":         func() (err error) { rc.TLS, err = boolArg(d); return },
		"timeout":     func() (err error) { rc.Timeout, err = durationArg(d); return },
		"key_prefix":  func() (err error) { rc.KeyPrefix, err = stringArg(d); return },
		"tagging":     func() (err error) { rc.Tagging, err = stringArg(d); return },
	})
}

// parseDisk reads the disk block.
func parseDisk(d *caddyfile.Dispenser, c *disk.Config) error {
	return block(d, "disk", map[string]func() error{
		"path": func() (err error) { c.Path, err = stringArg(d); return },
		"fsync": func() error {
			b, err := boolArg(d)
			c.Fsync = &b
			return err
		},
		"max_bytes":     func() (err error) { c.MaxBytes, err = sizeArg(d); return },
		"key_share":     func() (err error) { c.KeyShare, err = shareArg(d); return },
		"lock_timeout":  func() (err error) { c.LockTimeout, err = durationArg(d); return },
		"timeout":       func() (err error) { c.Timeout, err = durationArg(d); return },
		"reap_interval": func() (err error) { c.ReapInterval, err = durationArg(d); return },
	})
}

func parseIdempotency(d *caddyfile.Dispenser, id *replayguard.IdempotencyConfig) error {
	return block(d, "idempotency", map[string]func() error{
		"enabled": func() error {
			b, err := boolArg(d)
			id.Enabled = &b
			return err
		},
		"required": func() error {
			b, err := boolArg(d)
			id.Required = &b
			return err
		},
		"methods": func() error {
			ms, err := listArg(d)
			for _, m := range ms {
				if m != strings.ToUpper(m) {
					return d.Errf("replayguard: idempotency.methods: want upper-case method names, got %q", m)
				}
			}
			id.Methods = ms
			return err
		},
		"ttl":   func() (err error) { id.TTL, err = durationArg(d); return },
		"lease": func() (err error) { id.Lease, err = durationArg(d); return },
		"max_response_bytes": func() (err error) {
			id.MaxResponseBytes, err = sizeArg(d)
			return
		},
		"store_server_errors": func() (err error) { id.StoreServerErrors, err = boolArg(d); return },
		"store": func() (err error) {
			id.Store, err = enumArg(d, replayguard.StoreMemory, replayguard.StoreDisk, replayguard.StoreRedis, replayguard.StorePostgres)
			return
		},
		"derive_key":          func() (err error) { id.DeriveKey, err = enumArg(d, "off", "fingerprint"); return },
		"derive_window":       func() (err error) { id.DeriveWindow, err = durationArg(d); return },
		"fingerprint_headers": func() (err error) { id.FingerprintHeaders, err = listArg(d); return },
		"memory_max_bytes":    func() (err error) { id.MemoryMaxBytes, err = sizeArg(d); return },
		"key_share":           func() (err error) { id.KeyShare, err = shareArg(d); return },
	})
}

// parseKey reads "key <id> [<secret>...]" with an optional block.
func parseKey(d *caddyfile.Dispenser, c *replayguard.Config) error {
	if !d.NextArg() {
		return d.Errf("replayguard: key: want a key id")
	}
	k := replayguard.KeyConfig{ID: d.Val()}
	for _, existing := range c.Keys {
		if existing.ID == k.ID {
			return d.Errf("replayguard: key %q: defined twice", k.ID)
		}
	}
	k.Secrets = d.RemainingArgs()
	err := block(d, "keys["+strconv.Itoa(len(c.Keys))+"]", map[string]func() error{
		"secrets": func() error {
			s, err := listArg(d)
			k.Secrets = append(k.Secrets, s...)
			return err
		},
		"algorithm":       func() (err error) { k.Algorithm, err = stringArg(d); return },
		"public_key_file": func() (err error) { k.PublicKeyFile, err = stringArg(d); return },
		"jwk": func() error {
			s, err := stringArg(d)
			if err != nil {
				return err
			}
			if err := json.Unmarshal([]byte(s), &k.JWK); err != nil {
				return d.Errf("replayguard: key %q: jwk: want a JSON object: %v", k.ID, err)
			}
			return nil
		},
	})
	if err != nil {
		return err
	}
	if len(k.Secrets) == 0 && k.PublicKeyFile == "" && k.JWK == nil {
		return d.Errf("replayguard: key %q: give secrets, public_key_file or jwk", k.ID)
	}
	c.Keys = append(c.Keys, k)
	return nil
}

// block reads the block that follows the current line, dispatching each
// subdirective to its setter. An argument left on the section's own line is
// an error.
func block(d *caddyfile.Dispenser, section string, setters map[string]func() error) error {
	if d.NextArg() {
		return d.Errf("replayguard: %s: takes a block, not arguments", section)
	}
	d.SetContext(sectionKey, section)
	defer d.SetContext(sectionKey, "")
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		set, ok := setters[d.Val()]
		if !ok {
			return d.Errf("replayguard: %s: unknown subdirective %q", section, d.Val())
		}
		if err := set(); err != nil {
			return err
		}
	}
	return nil
}

// sectionKey holds, in the dispenser's context, the section being read.
const sectionKey = "replayguard.section"

// field names the current subdirective as the configuration field it sets
// ("idempotency.ttl").
func field(d *caddyfile.Dispenser) string {
	if s := d.GetContextString(sectionKey); s != "" {
		return s + "." + d.Val()
	}
	return d.Val()
}

func stringArg(d *caddyfile.Dispenser) (string, error) {
	name := field(d)
	var v string
	if !d.AllArgs(&v) {
		return "", d.Errf("replayguard: %s: want exactly one value", name)
	}
	return v, nil
}

func listArg(d *caddyfile.Dispenser, allowed ...string) ([]string, error) {
	name := field(d)
	vs := d.RemainingArgs()
	if len(vs) == 0 {
		return nil, d.Errf("replayguard: %s: want at least one value", name)
	}
	if len(allowed) > 0 {
		for _, v := range vs {
			if !contains(allowed, v) {
				return nil, d.Errf("replayguard: %s: %q is not one of %s", name, v, strings.Join(allowed, ", "))
			}
		}
	}
	return vs, nil
}

func enumArg(d *caddyfile.Dispenser, allowed ...string) (string, error) {
	name := field(d)
	v, err := stringArg(d)
	if err != nil {
		return "", err
	}
	if !contains(allowed, v) {
		return "", d.Errf("replayguard: %s: %q is not one of %s", name, v, strings.Join(allowed, ", "))
	}
	return v, nil
}

func contains(list []string, v string) bool {
	for _, a := range list {
		if a == v {
			return true
		}
	}
	return false
}

// boolArg reads an optional true/false; the bare subdirective means true.
func boolArg(d *caddyfile.Dispenser) (bool, error) {
	name := field(d)
	args := d.RemainingArgs()
	switch len(args) {
	case 0:
		return true, nil
	case 1:
		b, err := strconv.ParseBool(args[0])
		if err != nil {
			return false, d.Errf("replayguard: %s: want true or false, got %q", name, args[0])
		}
		return b, nil
	}
	return false, d.Errf("replayguard: %s: want at most one value (true or false)", name)
}

func durationArg(d *caddyfile.Dispenser) (replayguard.Duration, error) {
	name := field(d)
	s, err := stringArg(d)
	if err != nil {
		return 0, err
	}
	v, err := replayguard.ParseDuration(s)
	if err != nil {
		return 0, d.Errf("replayguard: %s: %v", name, err)
	}
	if v <= 0 {
		return 0, d.Errf("replayguard: %s: want a positive duration, got %q", name, s)
	}
	return replayguard.Duration(v), nil
}

func intArg(d *caddyfile.Dispenser) (int, error) {
	name := field(d)
	s, err := stringArg(d)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, d.Errf("replayguard: %s: want a non-negative integer, got %q", name, s)
	}
	return n, nil
}

// sizeArg reads a byte count: an integer or a humanized size ("1MiB").
func sizeArg(d *caddyfile.Dispenser) (int64, error) {
	name := field(d)
	s, err := stringArg(d)
	if err != nil {
		return 0, err
	}
	n, err := humanize.ParseBytes(s)
	if err != nil || n == 0 || n > math.MaxInt64 {
		return 0, d.Errf("replayguard: %s: want a positive size in bytes such as 1048576 or 1MiB, got %q", name, s)
	}
	return int64(n), nil
}

func rateArg(d *caddyfile.Dispenser) (float64, error) {
	name := field(d)
	s, err := stringArg(d)
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 || f >= 1 {
		return 0, d.Errf("replayguard: %s: want a number strictly between 0 and 1, got %q", name, s)
	}
	return f, nil
}

// shareArg reads a key share: a fraction in (0, 1].
func shareArg(d *caddyfile.Dispenser) (float64, error) {
	name := field(d)
	s, err := stringArg(d)
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f > 0 && f <= 1) {
		return 0, d.Errf("replayguard: %s: want a fraction above 0 and at most 1, got %q", name, s)
	}
	return f, nil
}
