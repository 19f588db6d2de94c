package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/replayguard/replayguard"
)

// SecretFilePrefix marks a secret kept in a file: "file:/run/secrets/a"
// is the content of that file (one trailing newline dropped), written as
// a secret is written in the configuration (so it may itself be
// "base64:…"). The file is read at start and again at each reload, which
// is how a secret rotates without a restart: a process's environment, and
// so a ${VAR} secret, does not change while it runs. A relative path
// resolves against the configuration file's directory.
const SecretFilePrefix = "file:"

// readSecretFiles replaces every file: secret of the top level's and the
// routes' keys by its file's content. dir resolves relative paths.
func (f *File) readSecretFiles(dir string) error {
	errs := readSecrets(f.Keys, "keys", dir)
	for i := range f.Routes {
		errs = append(errs, readSecrets(f.Routes[i].Keys, fmt.Sprintf("routes[%d].keys", i), dir)...)
	}
	return errors.Join(errs...)
}

func readSecrets(keys []replayguard.KeyConfig, at, dir string) []error {
	var errs []error
	for i := range keys {
		for j, s := range keys[i].Secrets {
			name, ok := strings.CutPrefix(s, SecretFilePrefix)
			if !ok {
				continue
			}
			field := fmt.Sprintf("%s[%d].secrets[%d]", at, i, j)
			if name == "" {
				errs = append(errs, fieldErr(field, "file: names no file"))
				continue
			}
			if !filepath.IsAbs(name) && dir != "" {
				name = filepath.Join(dir, name)
			}
			b, err := os.ReadFile(name)
			if err != nil {
				// The error names the file, never its content.
				errs = append(errs, fieldErr(field, "%v", err))
				continue
			}
			v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
			if v == "" {
				errs = append(errs, fieldErr(field, "%s is empty", name))
				continue
			}
			keys[i].Secrets[j] = v
		}
	}
	return errs
}
