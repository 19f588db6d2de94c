package confval_test

import (
	"testing"

	"github.com/replayguard/replayguard/internal/yaegisubset"
)

// The Traefik plugin loads this package in Yaegi: it imports the standard
// library and, of this module, only packages the plugin loads anyway, and
// keeps to the Go Yaegi runs.
func TestYaegiSubset(t *testing.T) {
	yaegisubset.Imports(t, ".")
	yaegisubset.Subset(t, ".")
}
