package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads, expands, decodes, defaults and validates the file at path,
// and places disk.path beside it (File.Disk).
func Load(path string) (File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return File{}, fmt.Errorf("config: %w", err)
	}
	f, err := parse(b, os.LookupEnv, filepath.Dir(path))
	if err != nil {
		return File{}, fmt.Errorf("%s: %w", path, err)
	}
	f.resolveDisk(path)
	return f, nil
}

// Parse decodes YAML configuration. lookup resolves ${VAR} references
// (os.LookupEnv in Load); a reference to an unset variable is an error.
// "$$" stands for a literal "$".
func Parse(data []byte, lookup func(string) (string, bool)) (File, error) {
	return parse(data, lookup, "")
}

// parse is Parse, reading file: secrets relative to dir.
func parse(data []byte, lookup func(string) (string, bool), dir string) (File, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return File{}, fmt.Errorf("config: %w", err)
	}
	if root.Kind == 0 {
		return File{}, errors.New("config: empty file")
	}
	if err := expandNode(&root, lookup); err != nil {
		return File{}, err
	}
	expanded, err := yaml.Marshal(&root)
	if err != nil {
		return File{}, fmt.Errorf("config: %w", err)
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(expanded))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return File{}, fmt.Errorf("config: %w", err)
	}
	if err := f.readSecretFiles(dir); err != nil {
		return File{}, err
	}
	f = f.WithDefaults()
	if err := errors.Join(f.Validate(), f.resolveRoutes()); err != nil {
		return File{}, err
	}
	return f, nil
}

// expandNode expands ${VAR} in every scalar value (not in keys).
func expandNode(n *yaml.Node, lookup func(string) (string, bool)) error {
	switch n.Kind {
	case yaml.ScalarNode:
		v, err := Expand(n.Value, lookup)
		if err != nil {
			return fmt.Errorf("config: line %d: %w", n.Line, err)
		}
		if v != n.Value {
			// The expanded text is re-resolved as a plain scalar, so
			// "db: ${DB}" can become an int; string fields take the text
			// as it is whatever it resolves to, and the encoder quotes what
			// needs it. The one exception: text that YAML reads as null
			// ("null", "~", "") would empty a string field, so it is
			// tagged a string and stays that literal text.
			n.Value = v
			n.Tag = ""
			n.Style = 0
			if resolvesToNull(v) {
				n.Tag = "!!str"
			}
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			if err := expandNode(n.Content[i], lookup); err != nil {
				return err
			}
		}
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			if err := expandNode(c, lookup); err != nil {
				return err
			}
		}
	}
	return nil
}

// resolvesToNull reports the plain scalars YAML reads as null.
func resolvesToNull(s string) bool {
	switch s {
	case "", "~", "null", "Null", "NULL":
		return true
	}
	return false
}

// Expand replaces ${NAME} with lookup(NAME). NAME is [A-Za-z_][A-Za-z0-9_]*;
// "$$" is a literal "$"; a "$" followed by anything else is kept as is.
func Expand(s string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", errors.New("unterminated ${ reference")
			}
			name := s[i+2 : i+2+end]
			if !validName(name) {
				return "", fmt.Errorf("invalid variable name %q", name)
			}
			v, ok := lookup(name)
			if !ok {
				return "", fmt.Errorf("environment variable %s is not set", name)
			}
			b.WriteString(v)
			i += 2 + end
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}
