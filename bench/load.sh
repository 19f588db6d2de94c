#!/usr/bin/env bash
# Load numbers of the replayguard binary against a no-op upstream.
#
# Builds bin/replayguard's source into a temp dir, starts the no-op upstream
# (bench/cmd/noop), measures it alone, then for each gateway mode — memory
# stores, Redis exact nonces, Redis Bloom nonces (a redis-server of its own
# on a free loopback port, stopped at the end) — starts `replayguard serve`
# with a generated configuration and drives it with `replayguard load`, once
# at a fixed rate and once as fast as CONCURRENCY requests in flight go.
# Prints a Markdown table. Every process it starts is stopped on exit.
#
# Usage: bench/load.sh            (from anywhere)
# Environment: RATE (fixed rate, req/s, default 1000), DURATION (per run,
# default 10s), CONCURRENCY (default 64), BODY_BYTES (request body, default
# 1024), REPLAY_EVERY (every Nth request is a replay of the previous one,
# default 0: none), REPLAYGUARD=PATH measures that binary instead of
# building one, KEEP=1 keeps the temp dir (configs, logs, JSON).
set -euo pipefail

RATE="${RATE:-1000}"
DURATION="${DURATION:-10s}"
CONCURRENCY="${CONCURRENCY:-64}"
BODY_BYTES="${BODY_BYTES:-1024}"
REPLAY_EVERY="${REPLAY_EVERY:-0}"

bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$bench_dir/.." && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/replayguard-load.XXXXXX")"
pids=()

cleanup() {
	local status=$?
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [[ "${KEEP:-0}" == 1 ]]; then
		echo "kept $tmp" >&2
	else
		rm -rf "$tmp"
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { echo "load.sh: $*" >&2; }

# stop PID: ends one process this script started and forgets it.
stop() {
	local pid=$1 keep=() p
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	for p in "${pids[@]}"; do
		[[ "$p" == "$pid" ]] || keep+=("$p")
	done
	pids=("${keep[@]+"${keep[@]}"}")
}

# wait_for_line FILE PATTERN PID: waits until FILE has a line matching
# PATTERN, failing if PID exits or 20 s pass.
wait_for_line() {
	local file=$1 pattern=$2 pid=$3 i
	for ((i = 0; i < 200; i++)); do
		if grep -q -- "$pattern" "$file" 2>/dev/null; then
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			log "process $pid exited; its output:"
			cat "$file" >&2
			return 1
		fi
		sleep 0.1
	done
	log "timed out waiting for '$pattern' in $file"
	return 1
}

# port_free PORT: true when nothing listens on 127.0.0.1:PORT.
port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

log "building into $tmp"
if [[ -n "${REPLAYGUARD:-}" ]]; then
	cp "$REPLAYGUARD" "$tmp/replayguard"
else
	(cd "$root" && go build -o "$tmp/replayguard" ./cmd/replayguard)
fi
(cd "$bench_dir" && go build -o "$tmp/noop" ./cmd/noop && go build -o "$tmp/loadtable" ./cmd/loadtable)

head -c "$BODY_BYTES" /dev/zero | tr '\0' 'x' >"$tmp/body"
secret="load-secret-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
key_id="load-client"

"$tmp/noop" >"$tmp/noop.out" 2>&1 &
noop_pid=$!
pids+=("$noop_pid")
wait_for_line "$tmp/noop.out" '^http://' "$noop_pid"
upstream="$(head -n1 "$tmp/noop.out")"
log "no-op upstream at $upstream"

uptime_before="$(uptime)"
rows=()

# drive NAME URL: one fixed-rate and one max-rate run against URL.
drive() {
	local name=$1 url=$2 slug
	slug="$(echo "$name" | tr -c 'A-Za-z0-9\n' '-')"
	for load in fixed max; do
		local rate=$RATE label="$RATE req/s"
		if [[ $load == max ]]; then
			rate=0 label="max ($CONCURRENCY in flight)"
		fi
		log "$name, $label, $DURATION"
		"$tmp/replayguard" load --secret "$secret" --key-id "$key_id" -d "@$tmp/body" \
			--rate "$rate" --duration "$DURATION" --concurrency "$CONCURRENCY" \
			--replay-every "$REPLAY_EVERY" --json "$url/v1/charges" \
			>"$tmp/$slug-$load.json" 2>"$tmp/$slug-$load.log" &
		local pid=$!
		pids+=("$pid")
		# A signal interrupts wait (not a foreground child), so the traps
		# clean up at once.
		if ! wait "$pid"; then
			log "replayguard load failed:"
			cat "$tmp/$slug-$load.log" >&2
			exit 1
		fi
		stop "$pid"
		rows+=("$name" "$label" "$tmp/$slug-$load.json")
	done
}

# gateway NAME STORE MODE [REDIS_ADDR]: serves a generated config, drives it,
# stops it.
gateway() {
	local name=$1 store=$2 mode=$3 redis_addr=${4:-} cfg="$tmp/$2-$3.yaml" out="$tmp/$2-$3.log"
	cat >"$cfg" <<EOF
listen: 127.0.0.1:0
upstream: $upstream
admin_listen: 127.0.0.1:0
scheme: hmac
keys:
  - id: $key_id
    secrets: ["$secret"]
nonce: {store: $store, mode: $mode}
idempotency: {enabled: true, required: true, store: $store}
EOF
	if [[ -n "$redis_addr" ]]; then
		printf 'redis: {addrs: ["%s"], timeout: 1s}\n' "$redis_addr" >>"$cfg"
	fi
	"$tmp/replayguard" serve --config "$cfg" >"$out" 2>&1 &
	local pid=$!
	pids+=("$pid")
	wait_for_line "$out" '"msg":"replayguard serving"' "$pid"
	local addr
	addr="$(grep -o '"listen":"[^"]*"' "$out" | head -n1 | cut -d'"' -f4)"
	log "$name: gateway at http://$addr"
	drive "$name" "http://$addr"
	stop "$pid"
}

drive "no-op upstream alone" "$upstream"
gateway "memory" memory exact

if ! command -v redis-server >/dev/null; then
	log "redis-server not found (apt-get install -y redis-server): Redis modes skipped"
else
	redis_pid=""
	for ((try = 0; try < 10; try++)); do
		port=$((20000 + RANDOM % 40000))
		port_free "$port" || continue
		mkdir -p "$tmp/redis"
		redis-server --bind 127.0.0.1 --port "$port" --dir "$tmp/redis" --save "" --appendonly no \
			>"$tmp/redis.log" 2>&1 &
		redis_pid=$!
		pids+=("$redis_pid")
		if wait_for_line "$tmp/redis.log" 'Ready to accept connections' "$redis_pid" 2>/dev/null; then
			break
		fi
		stop "$redis_pid"
		redis_pid=""
	done
	if [[ -z "$redis_pid" ]]; then
		log "could not start redis-server; its log:"
		cat "$tmp/redis.log" >&2
		exit 1
	fi
	log "redis-server at 127.0.0.1:$port"
	gateway "Redis exact" redis exact "127.0.0.1:$port"
	gateway "Redis bloom" redis bloom "127.0.0.1:$port"
	stop "$redis_pid"
fi
uptime_after="$(uptime)"

echo
replays="no replays"
if ((REPLAY_EVERY > 0)); then
	replays="every ${REPLAY_EVERY}th request a replay of the one before"
fi
echo "Load: $DURATION per run, $CONCURRENCY requests in flight at most, POST with a $BODY_BYTES-byte body and a fresh Idempotency-Key, $replays."
echo "uptime before: $uptime_before"
echo "uptime after:  $uptime_after"
echo
"$tmp/loadtable" "${rows[@]}"
