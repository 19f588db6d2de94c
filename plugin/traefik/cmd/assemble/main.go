// Command assemble writes the plugin's Traefik local-plugin tree:
//
//	go run ./cmd/assemble -o ../../plugins-local
//
// then point Traefik's static configuration at it:
//
//	experimental:
//	  localPlugins:
//	    replayguard:
//	      moduleName: github.com/replayguard/replayguard/plugin/traefik
//
// with Traefik started in the directory that holds plugins-local.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/replayguard/replayguard/plugin/traefik/internal/tree"
)

func main() {
	out := flag.String("o", "plugins-local", "the plugins-local directory to write the tree into")
	flag.Parse()
	dir, err := tree.Assemble(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(dir)
}
