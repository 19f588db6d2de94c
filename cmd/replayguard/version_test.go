package main

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
)

// The stamped version and revision win; the build information is the
// fallback, then "devel".
func TestVersionInfo(t *testing.T) {
	built := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "true"}}}, true
	}
	devel := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true
	}
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	for _, tc := range []struct {
		name              string
		version, rev, mod string
		info              func() (*debug.BuildInfo, bool)
		wantV, wantRev    string
		wantDirty         bool
	}{
		{"stamped", "v2.0.0", "def456", "false", built, "v2.0.0", "def456", false},
		{"stamped version, build info revision", "v2.0.0", "", "", built, "v2.0.0", "abc123", true},
		{"build info", "", "", "", built, "v1.2.3", "abc123", true},
		{"devel build", "", "", "", devel, "devel", "", false},
		{"no build info", "", "", "", none, "devel", "", false},
	} {
		v, rev, dirty := versionInfo(tc.version, tc.rev, tc.mod, tc.info)
		assert.Equal(t, tc.wantV, v, tc.name)
		assert.Equal(t, tc.wantRev, rev, tc.name)
		assert.Equal(t, tc.wantDirty, dirty, tc.name)
	}
}
