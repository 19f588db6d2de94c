package main_test

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var subcommands = []string{"serve", "demo", "sign", "check", "keygen", "load", "version"}

// --help and -h of every subcommand print its usage on stdout and exit 0,
// as does `replayguard help COMMAND`.
func TestSubcommandHelp(t *testing.T) {
	for _, name := range subcommands {
		for _, args := range [][]string{{name, "--help"}, {name, "-h"}, {"help", name}} {
			out, errOut, code := rg(t, nil, args...)
			assert.Equal(t, 0, code, args)
			assert.True(t, strings.HasPrefix(out, "Usage: replayguard "+name), "%v:\n%s", args, out)
			assert.Empty(t, errOut, args)
		}
	}
	out, _, code := rg(t, nil, "sign", "--help")
	require.Equal(t, 0, code)
	for _, group := range []string{"Every scheme:", "Idempotency (hmac, jwt, rfc9421):", "jwt (--scheme jwt):", "rfc9421 (--scheme rfc9421):", "Webhook presets"} {
		assert.Contains(t, out, "\n"+group, "sign --help groups the flags by scheme")
	}
	for _, flag := range []string{"--preset", "--send", "--idempotency-key", "--no-idempotency-key", "--sub", "--dpop-key", "--components", "--delivery-id", "--private-key"} {
		assert.Regexp(t, regexp.MustCompile(`\n  `+flag+`[ \n]`), out, flag)
	}
}

// An unexpected argument or flag is a usage error (exit 2) naming it,
// never ignored.
func TestUnexpectedArguments(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "none.yaml")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--config", cfg, "extra"}, `unexpected argument "extra"`},
		{[]string{"check", "extra"}, `unexpected argument "extra"`},
		{[]string{"demo", "extra"}, `unexpected argument "extra"`},
		{[]string{"keygen", "extra"}, `unexpected argument "extra"`},
		{[]string{"version", "extra"}, `unexpected argument "extra"`},
		{[]string{"sign", "--secret", "s", "--key-id", "a", "http://127.0.0.1:1/", "http://127.0.0.1:2/"}, `unexpected argument "http://127.0.0.1:2/"`},
		{[]string{"load", "--secret", "s", "--key-id", "a", "http://127.0.0.1:1/", "more"}, `unexpected argument "more"`},
		{[]string{"sign", "--bogus", "http://127.0.0.1:1/"}, "flag provided but not defined: -bogus"},
		{[]string{"keygen", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"serve", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"sign", "--secret", "s", "http://127.0.0.1:1/"}, "want --key-id"},
		{[]string{"sign", "--secret", "s", "--key-id", "a"}, "want one URL"},
		{[]string{"sign", "--secret", "s", "--key-id", "a", "--components", "@method", "--scheme", "hmac", "http://127.0.0.1:1/"}, "--components is not a flag of the hmac scheme"},
		{[]string{"sign", "--secret", "s", "--key-id", "a", "--curl", "--send", "http://127.0.0.1:1/"}, "choose one"},
		{[]string{"sign", "--secret", "s", "--key-id", "a", "--timeout", "1s", "http://127.0.0.1:1/"}, "--timeout applies to --send"},
		{[]string{"nonsense"}, `unknown command "nonsense"`},
	} {
		out, errOut, code := rg(t, nil, tc.args...)
		assert.Equal(t, 2, code, "%v: %s", tc.args, errOut)
		assert.Contains(t, errOut, tc.want, tc.args)
		assert.Empty(t, out, tc.args)
	}
}

// `make build` stamps the version and the revision with -ldflags;
// version prints both.
func TestVersionStamped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replayguard")
	ldflags := "-X main.version=v9.8.7 -X main.revision=0123456789abcdef0123456789abcdef01234567 -X main.modified=true"
	out, err := exec.Command("go", "build", "-ldflags", ldflags, "-o", path, ".").CombinedOutput()
	require.NoError(t, err, string(out))
	out, err = exec.Command(path, "version").Output()
	require.NoError(t, err)
	assert.Equal(t, "replayguard v9.8.7 (revision 0123456789abcdef0123456789abcdef01234567, modified)\n", string(out))
	out, err = exec.Command(path, "--version").Output()
	require.NoError(t, err)
	assert.Equal(t, "replayguard v9.8.7 (revision 0123456789abcdef0123456789abcdef01234567, modified)\n", string(out))
}
