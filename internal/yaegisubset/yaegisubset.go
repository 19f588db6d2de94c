// Package yaegisubset holds the checks that keep a package within what the
// Yaegi interpreter, which runs the Traefik plugin, loads: the imports and
// the subset of Go. Every package the plugin imports runs them in a test;
// the plugin's own test then loads it all through Yaegi.
package yaegisubset

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Imports checks that the package in dir imports only the standard library
// (not unsafe, not iter) and, of this module, only the packages in allowed:
// Yaegi cannot load go-redis, bits-and-blooms or unsafe code.
func Imports(t *testing.T, dir string, allowed ...string) {
	t.Helper()
	ok := map[string]bool{}
	for _, a := range allowed {
		ok[a] = true
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	require.NoError(t, err)
	fset := token.NewFileSet()
	n := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		n++
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		require.NoError(t, err)
		for _, imp := range f.Imports {
			path := strings.Trim(imp.Path.Value, `"`)
			if ok[path] {
				continue
			}
			first, _, _ := strings.Cut(path, "/")
			assert.NotContains(t, first, ".", "%s imports %s", name, path)
			assert.NotEqual(t, "unsafe", path, "%s imports unsafe", name)
			assert.NotEqual(t, "iter", path, "%s imports iter", name)
		}
	}
	assert.Positive(t, n)
}

// Subset checks that the package in dir keeps to the Go that Yaegi
// v0.16.1 runs (the plugin's own test loads it through Yaegi): no generics, no min, max or clear, no errors.As
// (it panics on interpreted types), no sync.OnceValue or OnceFunc, no
// tagless switch case with several expressions, no nil among the values
// of a multiple assignment (Yaegi panics with reflect.New(nil)), and no
// type switch or assertion to a named non-pointer type of this package
// (Yaegi confuses a named string with string, and loses value types behind
// interfaces).
func Subset(t *testing.T, dir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	require.NoError(t, err)
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		require.NoError(t, err)
		local := map[string]bool{}
		for _, d := range f.Decls {
			if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.TYPE {
				for _, s := range g.Specs {
					local[s.(*ast.TypeSpec).Name.Name] = true
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			at := func() string { return fset.Position(n.Pos()).String() }
			switch n := n.(type) {
			case *ast.FuncDecl:
				assert.Nil(t, n.Type.TypeParams, "%s: generic function", at())
			case *ast.TypeSpec:
				assert.Nil(t, n.TypeParams, "%s: generic type", at())
			case *ast.CallExpr:
				if id, ok := n.Fun.(*ast.Ident); ok {
					assert.NotContains(t, []string{"min", "max", "clear"}, id.Name, "%s: builtin", at())
				}
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok {
					if x, ok := sel.X.(*ast.Ident); ok && x.Name == "slices" {
						assert.NotContains(t, []string{"Sort", "SortFunc", "SortStableFunc"}, sel.Sel.Name, "%s: slices.%s", at(), sel.Sel.Name)
					}
				}
			case *ast.SelectorExpr:
				if x, ok := n.X.(*ast.Ident); ok {
					sel := x.Name + "." + n.Sel.Name
					assert.NotContains(t, []string{"errors.As", "sync.OnceValue", "sync.OnceValues", "sync.OnceFunc"}, sel, "%s", at())
				}
			case *ast.SwitchStmt:
				if n.Tag == nil {
					for _, c := range n.Body.List {
						assert.LessOrEqual(t, len(c.(*ast.CaseClause).List), 1, "%s: tagless case with several expressions", at())
					}
				}
			case *ast.AssignStmt:
				if len(n.Lhs) > 1 && len(n.Rhs) == len(n.Lhs) {
					for _, r := range n.Rhs {
						if id, ok := r.(*ast.Ident); ok {
							assert.NotEqual(t, "nil", id.Name, "%s: nil in a multiple assignment", at())
						}
					}
				}
			case *ast.TypeAssertExpr:
				if id, ok := n.Type.(*ast.Ident); ok {
					assert.False(t, local[id.Name], "%s: assertion to value type %s", at(), id.Name)
				}
			case *ast.TypeSwitchStmt:
				for _, c := range n.Body.List {
					for _, e := range c.(*ast.CaseClause).List {
						if star, ok := e.(*ast.StarExpr); ok {
							e = star.X
						}
						if id, ok := e.(*ast.Ident); ok {
							assert.False(t, local[id.Name], "%s: type switch on %s", at(), id.Name)
						}
					}
				}
			}
			return true
		})
	}
}
