package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/config"
)

// redacted stands in for every secret check prints.
const redacted = "<redacted>"

// cmdCheck validates a configuration as serve would read it — its fields,
// and its keys and scheme by building the Guard — without opening a store
// or a listener (a running gateway may hold its disk store), then prints
// the stores in effect and the effective configuration, secrets redacted.
func cmdCheck(args []string, stdout, stderr io.Writer) error {
	c := newCLI("check", "check [--config FILE]", `Validates a configuration as serve reads it, without opening a store or a
listener, and prints the stores in effect and the effective configuration
with every secret redacted. Exit status 1 when it is invalid.`, stderr)
	path := c.fs.String("config", "replayguard.yaml", "configuration `file`")
	if err := c.parse(args, stdout); err != nil {
		return err
	}
	if err := c.positional(0, 0, ""); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	if cfg.Upstream == "" && cfg.AuthListen == "" && len(cfg.Routes) == 0 {
		return config.Locate(*path, errUpstreamRequired())
	}
	if len(cfg.Routes) == 0 {
		if err := probe(cfg.Config); err != nil {
			if err := config.Locate(*path, err); errors.As(err, new(config.Errors)) {
				return err
			}
			return fmt.Errorf("%s: %w", *path, err)
		}
	}
	for i, r := range cfg.Routes {
		if r.Config.Scheme == config.SchemeNone {
			continue
		}
		if err := probe(r.Config); err != nil {
			return fmt.Errorf("%s: routes[%d] (%s): %w", *path, i, r.Name, err)
		}
	}
	out, err := effective(redact(cfg))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "# %s: valid\n# %s\n%s", *path, storesLine(cfg), out)
	return nil
}

// effectiveRoute is a route as check prints it: its effective
// configuration, the top level's with the route's fields over it.
type effectiveRoute struct {
	Name               string            `yaml:"name"`
	Match              config.RouteMatch `yaml:"match"`
	Upstream           string            `yaml:"upstream,omitempty"`
	replayguard.Config `yaml:",inline"`
}

// effective is cfg as YAML, each route with its effective configuration.
func effective(cfg config.File) ([]byte, error) {
	routes := make([]effectiveRoute, len(cfg.Routes))
	for i, r := range cfg.Routes {
		routes[i] = effectiveRoute{Name: r.Name, Match: r.Match, Upstream: r.Upstream, Config: r.Config}
		routes[i].Keys = r.Keys
		if routes[i].Keys == nil {
			routes[i].Keys = cfg.Keys
		}
	}
	cfg.Routes = nil
	out, err := yaml.Marshal(cfg)
	if err != nil || len(routes) == 0 {
		return out, err
	}
	more, err := yaml.Marshal(struct {
		Routes []effectiveRoute `yaml:"routes"`
	}{routes})
	return append(out, more...), err
}

// probe builds a Guard of c on memory stores: what only building its
// scheme finds (a key file that does not parse) fails here too.
func probe(c replayguard.Config) error {
	c.Nonce.Store, c.Idempotency.Store = replayguard.StoreMemory, replayguard.StoreMemory
	c.Nonce.Mode = replayguard.ModeExact
	_, err := replayguard.New(c)
	return err
}

// storesLine is the start-up log's stores line (storeAttrs) as text.
func storesLine(cfg config.File) string {
	var b strings.Builder
	b.WriteString("stores:")
	for _, a := range storeAttrs(cfg) {
		attr := a.(slog.Attr)
		fmt.Fprintf(&b, " %s=%s", attr.Key, attr.Value)
	}
	return b.String()
}

// dsnPassword finds the password of a key=value PostgreSQL DSN.
var dsnPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// redact returns cfg with every secret replaced: key secrets (the routes'
// too), private and symmetric JWK members, the Redis password and a DSN's
// password.
func redact(cfg config.File) config.File {
	cfg.Keys = redactKeys(cfg.Keys)
	routes := make([]config.Route, len(cfg.Routes))
	for i, r := range cfg.Routes {
		r.Keys = redactKeys(r.Keys)
		routes[i] = r
	}
	cfg.Routes = routes
	if cfg.Redis.Password != "" {
		cfg.Redis.Password = redacted
	}
	if dsn := cfg.Postgres.DSN; dsn != "" {
		if u, err := url.Parse(dsn); err == nil && u.User != nil && strings.Contains(dsn, "://") {
			if _, ok := u.User.Password(); ok {
				u.User = url.UserPassword(u.User.Username(), "redacted")
			}
			cfg.Postgres.DSN = u.String()
		} else {
			cfg.Postgres.DSN = dsnPassword.ReplaceAllString(dsn, "${1}"+redacted)
		}
	}
	return cfg
}

// redactKeys returns keys with their secrets and private JWK members
// replaced.
func redactKeys(keys []replayguard.KeyConfig) []replayguard.KeyConfig {
	if keys == nil {
		return nil
	}
	out := make([]replayguard.KeyConfig, len(keys))
	for i, k := range keys {
		if len(k.Secrets) > 0 {
			k.Secrets = make([]string, len(k.Secrets))
			for j := range k.Secrets {
				k.Secrets[j] = redacted
			}
		}
		if k.JWK != nil {
			jwk := make(map[string]any, len(k.JWK))
			for name, v := range k.JWK {
				switch name {
				case "d", "p", "q", "dp", "dq", "qi", "k", "oth":
					v = redacted
				}
				jwk[name] = v
			}
			k.JWK = jwk
		}
		out[i] = k
	}
	return out
}
