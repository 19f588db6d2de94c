#!/usr/bin/env bash
# replayguard beside its peers, in one interleaved run (bench/cmd/peers).
#
# Builds replayguard, the no-op upstream (bench/cmd/noop), the baseline
# (bench/cmd/bareproxy: a bare httputil.ReverseProxy with the binary's
# Transport settings and a BufferPool), Caddy with the replayguard module
# (plugin/caddy/cmd/caddy; CADDY=0 leaves the Caddy targets out, a cold
# build takes minutes) and bench/cmd/peers into a new directory under the
# repository's bin/ (a real file system: the default configuration's disk
# store lives there), then runs bench/cmd/peers: each round, every target
# is started afresh, preloaded with 200,000 covered POSTs and measured —
# POST and GET as fast as 64 requests in flight go (req/s, CPU per
# request), then at 1,000 req/s (p99) — by `replayguard load`. nginx and
# redis-server are used when installed: a private nginx with its own
# configuration and prefix in that directory, a redis-server of its own on
# a free loopback port; the machine's services are not touched. Every
# process it starts is stopped on exit, also on Ctrl-C.
#
# Usage: bench/peers.sh [peers flags]     (from anywhere)
#   -rounds 7 -duration 10s -rate 1000 -concurrency 64 -body 1024
#   -preload 200000 -targets bare,caddy,caddy-replayguard,memory,
#   memory-gogc200,memory-noidem,redis-exact,redis-bloom,default,nginx
# Environment: WRITE=1 puts the report into BENCHMARKS.md (between its
# peers markers) besides printing it; KEEP=1 keeps the directory (the
# results JSON, configurations, logs); CADDY=0 builds no Caddy.
# Re-render a kept run: bench/peers.sh -render bin/peers.XXXX/results.json
set -euo pipefail

bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$bench_dir/.." && pwd)"
mkdir -p "$root/bin"
work="$(mktemp -d "$root/bin/peers.XXXXXX")"
pid=""

cleanup() {
	local status=$?
	if [[ -n "$pid" ]]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	if [[ "${KEEP:-0}" == 1 ]]; then
		echo "kept $work" >&2
	else
		rm -rf "$work"
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "peers.sh: building into $work" >&2
(cd "$root" && go build -o "$work/replayguard" ./cmd/replayguard)
(cd "$bench_dir" && go build -o "$work/noop" ./cmd/noop && go build -o "$work/bareproxy" ./cmd/bareproxy &&
	go build -o "$work/peers" ./cmd/peers)
if [[ "${CADDY:-1}" != 0 ]]; then
	(cd "$root/plugin/caddy" && go build -o "$work/caddy" ./cmd/caddy)
fi

args=(-bin "$work" -work "$work")
if [[ "${WRITE:-0}" == 1 ]]; then
	args+=(-write "$root/BENCHMARKS.md")
fi
command="bench/peers.sh"
if (($# > 0)); then
	command+=" $*"
fi
# A signal interrupts wait (not a foreground child), so the traps stop
# the run at once; peers stops what it started.
PEERS_COMMAND="$command" "$work/peers" "${args[@]}" "$@" &
pid=$!
wait "$pid"
pid=""
