// Command replayguard is the replay-protection gateway: a reverse proxy (and
// forward-auth endpoint) that verifies signed requests, plus the client-side
// tools to sign requests and make keys.
//
//	replayguard serve   --config replayguard.yaml
//	replayguard demo
//	replayguard sign    --config replayguard.yaml --key-id client-a -X POST -d @body.json URL
//	replayguard check   --config replayguard.yaml
//	replayguard keygen
//	replayguard version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
)

// Set at build time by `make build`:
//
//	-ldflags "-X main.version=… -X main.revision=… -X main.modified=true|false"
//
// Unset, versionInfo falls back to the build information the Go toolchain
// records (the module version, vcs.revision, vcs.modified), then "devel".
var (
	version  = ""
	revision = ""
	modified = ""
)

const usage = `replayguard — signed-request replay protection gateway

Usage:
  replayguard serve   [--config FILE]        reverse proxy / forward-auth gateway
  replayguard demo    [--listen ADDR]        gateway + echo upstream, prints a signed curl
  replayguard sign    [flags] URL            signs a request (hmac, jwt, rfc9421, webhook presets);
                                             prints its headers, a curl command (--curl) or sends it (--send)
  replayguard check   [--config FILE]        validates, prints the stores and the effective configuration (secrets redacted)
  replayguard keygen  [--id ID]              prints a new random secret
  replayguard load    [flags] URL            signed load against a gateway
  replayguard version                        prints the version and the VCS revision

Run 'replayguard COMMAND --help' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command of args and returns the exit status: 0 on success
// (and for --help), 2 for a usage error, 1 for any other error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = cmdServe(ctx, args[1:], stdout, stderr)
	case "demo":
		err = cmdDemo(ctx, args[1:], stdout, stderr)
	case "sign":
		err = cmdSign(ctx, args[1:], stdout, stderr)
	case "check":
		err = cmdCheck(args[1:], stdout, stderr)
	case "load":
		err = cmdLoad(ctx, args[1:], stdout, stderr)
	case "keygen":
		err = cmdKeygen(args[1:], stdout, stderr)
	case "version":
		err = cmdVersion(args[1:], stdout, stderr)
	case "--version", "-v":
		fmt.Fprintln(stdout, "replayguard", versionString())
		return 0
	case "help", "-h", "--help":
		if len(args) == 2 && args[1] != "" && args[1] != "help" && !strings.HasPrefix(args[1], "-") {
			return run(ctx, []string{args[1], "--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "replayguard: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintln(stderr, "replayguard:", err)
	return 1
}

func cmdVersion(args []string, stdout, stderr io.Writer) error {
	c := newCLI("version", "version", "Prints the version and the VCS revision the binary was built from.", stderr)
	if err := c.parse(args, stdout); err != nil {
		return err
	}
	if err := c.positional(0, 0, ""); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "replayguard", versionString())
	return nil
}

// versionString is the version, then the revision when one is known:
// "v1.2.0 (revision 5d41402a…, modified)".
func versionString() string {
	v, rev, dirty := versionInfo(version, revision, modified, debug.ReadBuildInfo)
	if rev == "" {
		return v
	}
	if dirty {
		return v + " (revision " + rev + ", modified)"
	}
	return v + " (revision " + rev + ")"
}

// versionInfo resolves the version and revision: the values stamped at
// build time, else the module version and VCS settings of the build
// information, else "devel" and no revision.
func versionInfo(stampedVersion, stampedRevision, stampedModified string, buildInfo func() (*debug.BuildInfo, bool)) (v, rev string, dirty bool) {
	v, rev, dirty = stampedVersion, stampedRevision, stampedModified == "true"
	if bi, ok := buildInfo(); ok {
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		if rev == "" {
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					dirty = s.Value == "true"
				}
			}
		}
	}
	if v == "" {
		v = "devel"
	}
	return v, rev, dirty
}
