// Command caddy is Caddy with its standard modules and replayguard's
// http.handlers.replayguard. It is what `make caddy` builds into bin/caddy;
// xcaddy builds the same binary (see examples/caddy/README.md).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/replayguard/replayguard/plugin/caddy"
)

func main() { caddycmd.Main() }
