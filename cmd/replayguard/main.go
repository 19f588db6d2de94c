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
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

const usage = `replayguard — signed-request replay protection gateway

Usage:
  replayguard serve   --config FILE          reverse proxy / forward-auth gateway
  replayguard demo    [--listen ADDR]        gateway + echo upstream, prints a signed curl
  replayguard sign    --config FILE --key-id ID [-X METHOD] [-d DATA|@FILE] [-H 'K: V'] [--curl] URL
  replayguard check   --config FILE          validates, prints the stores and the effective configuration (secrets redacted)
  replayguard keygen  [--id ID]              prints a new random secret
  replayguard load    --secret S --key-id ID [--rate R] [--duration D] [--concurrency C] [--replay-every N] URL
  replayguard version
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

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
		err = cmdSign(args[1:], stdout, stderr)
	case "check":
		err = cmdCheck(args[1:], stdout, stderr)
	case "load":
		err = cmdLoad(ctx, args[1:], stdout, stderr)
	case "keygen":
		err = cmdKeygen(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "replayguard", versionString())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "replayguard: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, errUsage) {
			return 2
		}
		fmt.Fprintln(stderr, "replayguard:", err)
		return 1
	}
	return 0
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
