// Package tree assembles the plugin's local-plugin tree, the layout
// Traefik loads local plugins from:
//
//	<root>/src/<module>/.traefik.yml
//	<root>/src/<module>/go.mod
//	<root>/src/<module>/*.go                      the plugin package
//	<root>/src/<module>/vendor/<import path>/*.go every non-standard package it needs
//
// Traefik's interpreter resolves imports GOPATH-style, with <root> as its
// GOPATH and vendor directories searched upwards from the importing
// package; it has no module support. So the vendor directory holds the
// source of every package the plugin depends on (the replayguard core
// packages and their third-party dependencies), as go mod vendor would lay
// it out, with a modules.txt naming their modules.
package tree

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Module is the plugin's module path, its moduleName in Traefik's
// experimental.localPlugins.
const Module = "github.com/replayguard/replayguard/plugin/traefik"

// Manifest is the file Traefik reads first.
const Manifest = ".traefik.yml"

// pkg is one package of the plugin's dependency graph.
type pkg struct {
	importPath, dir, module, version string
}

// Assemble writes the tree under root (which becomes Traefik's
// plugins-local directory) and returns the plugin's directory in it. The
// go command must be on PATH, and the current directory inside the
// plugin's module. An existing tree for the module is replaced.
func Assemble(root string) (string, error) {
	pkgs, err := deps()
	if err != nil {
		return "", err
	}
	var self *pkg
	for i := range pkgs {
		if pkgs[i].importPath == Module {
			self = &pkgs[i]
		}
	}
	if self == nil {
		return "", fmt.Errorf("tree: %s is not among the packages go list found", Module)
	}
	dst := filepath.Join(root, "src", filepath.FromSlash(Module))
	if err := os.RemoveAll(dst); err != nil {
		return "", fmt.Errorf("tree: %w", err)
	}
	if err := copyGoFiles(self.dir, dst); err != nil {
		return "", err
	}
	if err := copyFile(filepath.Join(self.dir, Manifest), filepath.Join(dst, Manifest)); err != nil {
		return "", err
	}
	if err := writeGoMod(filepath.Join(self.dir, "go.mod"), filepath.Join(dst, "go.mod")); err != nil {
		return "", err
	}
	var vendored []pkg
	for _, p := range pkgs {
		if p.importPath == Module {
			continue
		}
		if err := copyGoFiles(p.dir, filepath.Join(dst, "vendor", filepath.FromSlash(p.importPath))); err != nil {
			return "", err
		}
		vendored = append(vendored, p)
	}
	if err := writeModulesTxt(filepath.Join(dst, "vendor", "modules.txt"), vendored); err != nil {
		return "", err
	}
	return dst, nil
}

// deps lists the plugin package and every non-standard package it depends
// on (test dependencies excluded).
func deps() ([]pkg, error) {
	var stderr bytes.Buffer
	cmd := exec.Command("go", "list", "-deps",
		"-f", `{{if not .Standard}}{{.ImportPath}}{{"\t"}}{{.Dir}}{{"\t"}}{{with .Module}}{{.Path}}{{"\t"}}{{.Version}}{{end}}{{end}}`,
		Module)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("tree: go list: %w: %s", err, stderr.String())
	}
	var pkgs []pkg
	for _, line := range strings.Split(string(out), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 4 || f[1] == "" {
			return nil, fmt.Errorf("tree: unexpected go list line %q", line)
		}
		pkgs = append(pkgs, pkg{importPath: f[0], dir: f[1], module: f[2], version: f[3]})
	}
	return pkgs, nil
}

// copyGoFiles copies the non-test Go files of the package in dir to dst,
// for every platform (the interpreter applies build constraints itself).
func copyGoFiles(dir, dst string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("tree: %w", err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("tree: %w", err)
	}
	n := 0
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		if err := copyFile(filepath.Join(dir, name), filepath.Join(dst, name)); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("tree: no Go files in %s", dir)
	}
	return nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("tree: %w", err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		return fmt.Errorf("tree: %w", err)
	}
	return nil
}

// writeGoMod writes the module's go.mod without its replace directives,
// which point into this repository and mean nothing in the tree.
func writeGoMod(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("tree: %w", err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "replace ") {
			continue
		}
		out = append(out, line)
	}
	return writeFile(dst, strings.Join(out, "\n"))
}

// writeModulesTxt records which module each vendored package comes from,
// in go mod vendor's format.
func writeModulesTxt(dst string, pkgs []pkg) error {
	byModule := map[string][]string{}
	version := map[string]string{}
	for _, p := range pkgs {
		if p.module == "" {
			return fmt.Errorf("tree: %s belongs to no module", p.importPath)
		}
		byModule[p.module] = append(byModule[p.module], p.importPath)
		version[p.module] = p.version
	}
	modules := make([]string, 0, len(byModule))
	for m := range byModule {
		modules = append(modules, m)
	}
	sort.Strings(modules)
	var b strings.Builder
	for _, m := range modules {
		v := version[m]
		if v == "" {
			v = "v0.0.0"
		}
		fmt.Fprintf(&b, "# %s %s\n## explicit\n", m, v)
		list := byModule[m]
		sort.Strings(list)
		for _, p := range list {
			b.WriteString(p + "\n")
		}
	}
	if b.Len() == 0 {
		return errors.New("tree: nothing to vendor")
	}
	return writeFile(dst, b.String())
}

func writeFile(dst, s string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("tree: %w", err)
	}
	if err := os.WriteFile(dst, []byte(s), 0o644); err != nil {
		return fmt.Errorf("tree: %w", err)
	}
	return nil
}
