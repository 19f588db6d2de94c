package main

import (
	"errors"
	"flag"
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
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "replayguard.yaml", "configuration file")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	if cfg.Upstream == "" && cfg.AuthListen == "" {
		return config.Locate(*path, errUpstreamRequired())
	}
	probe := cfg.Config
	probe.Nonce.Store, probe.Idempotency.Store = replayguard.StoreMemory, replayguard.StoreMemory
	probe.Nonce.Mode = replayguard.ModeExact
	if _, err := replayguard.New(probe); err != nil {
		if err := config.Locate(*path, err); errors.As(err, new(config.Errors)) {
			return err
		}
		return fmt.Errorf("%s: %w", *path, err)
	}
	out, err := yaml.Marshal(redact(cfg))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "# %s: valid\n# %s\n%s", *path, storesLine(cfg), out)
	return nil
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

// redact returns cfg with every secret replaced: key secrets, private and
// symmetric JWK members, the Redis password and a DSN's password.
func redact(cfg config.File) config.File {
	keys := make([]replayguard.KeyConfig, len(cfg.Keys))
	for i, k := range cfg.Keys {
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
		keys[i] = k
	}
	cfg.Keys = keys
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
