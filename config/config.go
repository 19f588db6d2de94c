package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/replayguard/replayguard"
)

// Load reads, expands, decodes, defaults and validates the file at path,
// and places disk.path beside it (File.Disk). Its errors are Errors, each
// naming the file, the line and the field.
func Load(path string) (File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return File{}, fmt.Errorf("config: %w", err)
	}
	f, err := parse(path, b, os.LookupEnv)
	if err != nil {
		return File{}, err
	}
	f.resolveDisk(path)
	return f, nil
}

// Parse decodes YAML configuration. lookup resolves ${VAR} references
// (os.LookupEnv in Load); a reference to an unset variable is an error.
// "$$" stands for a literal "$". Its errors are Errors: every problem of
// the file, each at its line, sorted by line.
func Parse(data []byte, lookup func(string) (string, bool)) (File, error) {
	return parse("", data, lookup)
}

// fileType is the type the configuration file decodes into.
var fileType = reflect.TypeOf(File{})

func parse(name string, data []byte, lookup func(string) (string, bool)) (File, error) {
	r := &report{file: name}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		r.syntax(err)
		return File{}, r.result()
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		r.at(nil, "", "empty file", nil)
		return File{}, r.result()
	}
	r.expand(&root, "", lookup)
	collectSecrets(&root, "", &r.secrets)
	(&checker{r: r, done: map[aliasUse]bool{}}).value(root.Content[0], root.Content[0], fileType, "")
	var f File
	if err := root.Decode(&f); err != nil {
		r.at(nil, "", oneLine(strings.TrimPrefix(err.Error(), "yaml: ")), err)
		return File{}, r.result()
	}
	dir := ""
	if name != "" {
		dir = filepath.Dir(name)
	}
	secretErr := f.readSecretFiles(dir)
	f = f.WithDefaults()
	r.validation(&root, errors.Join(secretErr, f.Validate(), f.resolveRoutes()))
	if err := r.result(); err != nil {
		return File{}, err
	}
	return f, nil
}

// Locate places the errors err names fields of in the configuration file
// at path, as Load places its own: for the errors of building what a
// loaded file describes (its keys, its stores). err is returned as it is
// when it names no field, or when the file cannot be read again.
func Locate(path string, err error) error {
	var fe *replayguard.FieldError
	var placed Errors
	if err == nil || !errors.As(err, &fe) || errors.As(err, &placed) {
		return err
	}
	b, rerr := os.ReadFile(path)
	if rerr != nil {
		return err
	}
	var root yaml.Node
	if yaml.Unmarshal(b, &root) != nil || len(root.Content) == 0 {
		return err
	}
	r := &report{file: path}
	r.expand(&root, "", os.LookupEnv)
	r.errs, r.failed = nil, nil
	collectSecrets(&root, "", &r.secrets)
	r.validation(&root, err)
	return r.result()
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
