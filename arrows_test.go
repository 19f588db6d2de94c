package replayguard_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/replayguard/replayguard"

// corePackages are the packages every shape, the Traefik plugin's
// interpreter included, loads: they configure and run the Guard.
var corePackages = []string{".", "./signature/...", "./timestamp/...", "./nonce", "./idempotency"}

// outsideTheCore are what the core never depends on: the store backends
// and their clients, the configuration file loader, metrics, the binary,
// the adapters, and every third-party module but golang-jwt and uuid.
var outsideTheCore = []string{
	module + "/stores", module + "/config", module + "/metrics", module + "/cmd", module + "/plugin",
	module + "/postgres", module + "/redis", module + "/bloom", module + "/reliability",
	"github.com/redis/", "github.com/bits-and-blooms/", "github.com/jackc/", "github.com/prometheus/",
	"go.etcd.io/", "github.com/cockroachdb/", "go.yaml.in/", "gopkg.in/",
}

// TestImportArrows keeps the direction of the dependencies: the core
// imports none of what builds on it.
func TestImportArrows(t *testing.T) {
	args := append([]string{"list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}"}, corePackages...)
	out, err := exec.Command("go", args...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, module+"/signature", "the listing covers the core")
	for _, dep := range deps {
		for _, banned := range outsideTheCore {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("the core depends on %s", dep)
			}
		}
	}
}
