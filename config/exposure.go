package config

import (
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Exposure is a configuration file that holds secrets written into it
// (not ${VAR} references) while users other than its owner may read it.
type Exposure struct {
	// Path is the file.
	Path string
	// Mode is its permission bits.
	Mode fs.FileMode
	// Fields name the literal secrets, e.g. "keys[0].secrets[1] (line 7)".
	Fields []string
}

// CheckExposure reports the file at path when it holds a literal secret
// and its mode lets group or others read it (mode & 0o044 != 0); nil when
// it is private or every secret in it is a ${VAR} reference. Secrets are
// keys[].secrets[], a symmetric or private jwk ("k", "d"), redis.password
// and a password inside postgres.dsn. The binary logs a warning for it at
// start; it never refuses the file.
func CheckExposure(path string) (*Exposure, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if info.Mode().Perm()&0o044 == 0 {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	fields := LiteralSecrets(data)
	if len(fields) == 0 {
		return nil, nil
	}
	return &Exposure{Path: path, Mode: info.Mode().Perm(), Fields: fields}, nil
}

// LiteralSecrets returns the fields of a YAML configuration that hold a
// secret written in the file itself rather than a ${VAR} reference, each
// with its line. Unparsable data yields none: Parse reports it.
func LiteralSecrets(data []byte) []string {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil || root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return nil
	}
	top := root.Content[0]
	var out []string
	add := func(field string, n *yaml.Node) {
		out = append(out, fmt.Sprintf("%s (line %d)", field, n.Line))
	}
	keyNodes := func(at string, keys *yaml.Node) {
		if keys == nil || keys.Kind != yaml.SequenceNode {
			return
		}
		for i, k := range keys.Content {
			if secrets := mapValue(k, "secrets"); secrets != nil && secrets.Kind == yaml.SequenceNode {
				for j, s := range secrets.Content {
					if s.Kind == yaml.ScalarNode && isLiteral(s.Value) {
						add(fmt.Sprintf("%s[%d].secrets[%d]", at, i, j), s)
					}
				}
			}
			for _, name := range []string{"k", "d"} {
				if v := mapValue(mapValue(k, "jwk"), name); v != nil && v.Kind == yaml.ScalarNode && isLiteral(v.Value) {
					add(fmt.Sprintf("%s[%d].jwk.%s", at, i, name), v)
				}
			}
		}
	}
	keyNodes("keys", mapValue(top, "keys"))
	if routes := mapValue(top, "routes"); routes != nil && routes.Kind == yaml.SequenceNode {
		for i, r := range routes.Content {
			keyNodes(fmt.Sprintf("routes[%d].keys", i), mapValue(r, "keys"))
		}
	}
	if v := mapValue(mapValue(top, "redis"), "password"); v != nil && v.Kind == yaml.ScalarNode && isLiteral(v.Value) {
		add("redis.password", v)
	}
	if v := mapValue(mapValue(top, "postgres"), "dsn"); v != nil && v.Kind == yaml.ScalarNode && isLiteral(v.Value) && dsnHasPassword(v.Value) {
		add("postgres.dsn", v)
	}
	return out
}

// isLiteral reports a non-empty value with no ${VAR} reference in it that
// does not name a file (SecretFilePrefix).
func isLiteral(v string) bool {
	return strings.TrimSpace(v) != "" && !strings.Contains(v, "${") && !strings.HasPrefix(v, SecretFilePrefix)
}

// dsnHasPassword reports a libpq URL with a password or a key-value DSN
// with a password field.
func dsnHasPassword(dsn string) bool {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return true
		}
	}
	return strings.Contains(strings.ToLower(dsn), "password=")
}

// mapValue returns the value of key in mapping n, or nil.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
