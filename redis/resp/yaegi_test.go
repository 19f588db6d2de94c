package resp

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The Traefik plugin loads this package in Yaegi, which cannot load
// go-redis or unsafe code: it imports the standard library and, of this
// module, only packages the plugin loads anyway.
func TestImportsOnlyTheStandardLibrary(t *testing.T) {
	allowed := map[string]bool{
		"github.com/replayguard/replayguard/nonce":        true,
		"github.com/replayguard/replayguard/idempotency":  true,
		"github.com/replayguard/replayguard/redis/layout": true,
	}
	files, err := filepath.Glob("*.go")
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
			if allowed[path] {
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
