package traefik_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// notInTheInterpreter are modules Traefik's interpreter cannot load or
// that have no place in a plugin: the go-redis and bits-and-blooms
// libraries, the PostgreSQL driver, Prometheus, embedded database engines.
var notInTheInterpreter = []string{
	"github.com/redis/", "github.com/bits-and-blooms/", "github.com/jackc/", "github.com/prometheus/",
	"go.etcd.io/", "github.com/cockroachdb/",
}

// TestPluginImportArrows: nothing the plugin imports reaches them.
func TestPluginImportArrows(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/replayguard/replayguard", "the listing covers the plugin's imports")
	for _, dep := range deps {
		for _, banned := range notInTheInterpreter {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("the plugin depends on %s", dep)
			}
		}
	}
}
