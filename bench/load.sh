#!/usr/bin/env bash
# Load numbers of the replayguard binary against a no-op upstream.
#
# Builds bin/replayguard's source into a temp dir, starts the no-op upstream
# (bench/cmd/noop), measures it alone, then for each gateway mode — memory
# stores, the durable disk store (fsync on, and off), Redis exact nonces,
# Redis Bloom nonces (a redis-server of its own on a free loopback port,
# stopped at the end) — starts `replayguard serve` with a generated
# configuration and drives it with `replayguard load`, once at a fixed rate
# and once as fast as CONCURRENCY requests in flight go. Each request method
# is measured on a gateway of its own: POST with a fresh Idempotency-Key
# (nonce, idempotency claim, upstream, stored response) and GET (nonce
# only). The modes take turns within a round (memory, disk, … for POST, then
# for GET) and the rounds repeat, so that memory and disk see the same load
# of the machine. Prints a Markdown table, the disk modes against memory run
# by run, the device's fsync latency in the disk directory (bench/cmd/
# fsyncprobe, before and after), the disk store's bytes per accepted request
# and its group commits (from the gateway's /metrics). Every process it
# starts is stopped on exit.
#
# Usage: bench/load.sh            (from anywhere)
# Environment: RATE (fixed rate, req/s, default 1000), DURATION (per run,
# default 10s), CONCURRENCY (default 64), BODY_BYTES (POST body, default
# 1024), REPLAY_EVERY (every Nth request is a replay of the previous one,
# default 0: none), MODES (default "memory disk disk-nofsync redis-exact
# redis-bloom"), METHODS (default "POST GET"), ROUNDS (default 2),
# DISK_DIR (where the disk modes keep their files, default a new
# directory under the repository's bin/ — a real file system, not the
# tmpfs a TMPDIR may be; a directory given is used for a new subdirectory),
# LOG_ACCESS (the gateways' log.access, default false: rejections only,
# none in these runs; true writes an access line per request to a file),
# REPLAYGUARD=PATH measures that binary instead of building one, KEEP=1
# keeps the temp dir (configs, logs, JSON, /metrics scrapes) and the disk
# files.
set -euo pipefail

RATE="${RATE:-1000}"
DURATION="${DURATION:-10s}"
CONCURRENCY="${CONCURRENCY:-64}"
BODY_BYTES="${BODY_BYTES:-1024}"
REPLAY_EVERY="${REPLAY_EVERY:-0}"
MODES="${MODES:-memory disk disk-nofsync redis-exact redis-bloom}"
METHODS="${METHODS:-POST GET}"
ROUNDS="${ROUNDS:-2}"
LOG_ACCESS="${LOG_ACCESS:-false}"

bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$bench_dir/.." && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/replayguard-load.XXXXXX")"
disk_root=""
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
		echo "kept $tmp${disk_root:+ and $disk_root}" >&2
	else
		rm -rf "$tmp"
		if [[ -n "$disk_root" ]]; then
			rm -rf "$disk_root"
		fi
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

for mode in $MODES; do
	case $mode in
	memory | disk | disk-nofsync | redis-exact | redis-bloom) ;;
	*)
		log "unknown mode '$mode' in MODES (memory disk disk-nofsync redis-exact redis-bloom)"
		exit 2
		;;
	esac
done
for method in $METHODS; do
	case $method in
	POST | GET) ;;
	*)
		log "unknown method '$method' in METHODS (POST GET)"
		exit 2
		;;
	esac
done

log "building into $tmp"
if [[ -n "${REPLAYGUARD:-}" ]]; then
	cp "$REPLAYGUARD" "$tmp/replayguard"
else
	(cd "$root" && go build -o "$tmp/replayguard" ./cmd/replayguard)
fi
(cd "$bench_dir" && go build -o "$tmp/noop" ./cmd/noop && go build -o "$tmp/loadtable" ./cmd/loadtable &&
	go build -o "$tmp/fsyncprobe" ./cmd/fsyncprobe)

head -c "$BODY_BYTES" /dev/zero | tr '\0' 'x' >"$tmp/body"
secret="load-secret-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
key_id="load-client"

uses_disk=0
uses_redis=0
for mode in $MODES; do
	case $mode in
	disk*) uses_disk=1 ;;
	redis*) uses_redis=1 ;;
	esac
done

probes=()
# probe WHEN: the device's fsync latency in the disk directory.
probe() {
	local line
	while IFS= read -r line; do
		probes+=("$1: $line")
	done < <("$tmp/fsyncprobe" -n 2000 -size 4096 "$disk_root")
}

if ((uses_disk)); then
	if [[ -n "${DISK_DIR:-}" ]]; then
		mkdir -p "$DISK_DIR"
		disk_root="$(mktemp -d "$DISK_DIR/load-disk.XXXX")"
	else
		mkdir -p "$root/bin"
		disk_root="$(mktemp -d "$root/bin/load-disk.XXXX")"
	fi
	read -r disk_dev disk_fs < <(df -PT "$disk_root" | awk 'NR == 2 { print $1, $2 }')
	log "disk modes in $disk_root ($disk_fs on $disk_dev)"
	if [[ $disk_fs == tmpfs || $disk_fs == ramfs ]]; then
		log "warning: $disk_root is on $disk_fs: fsync costs nothing there; set DISK_DIR to a directory on a disk"
	fi
	probe before
fi

"$tmp/noop" >"$tmp/noop.out" 2>&1 &
noop_pid=$!
pids+=("$noop_pid")
wait_for_line "$tmp/noop.out" '^http://' "$noop_pid"
upstream="$(head -n1 "$tmp/noop.out")"
log "no-op upstream at $upstream"

uptime_before="$(uptime)"
rows=()
disk_lines=()

# scrape ADMIN FILE: the gateway's /metrics into FILE.
scrape() {
	curl -fsS --max-time 5 "http://$1/metrics" >"$2"
}

# metric FILE NAME: a gauge's or counter's value in a /metrics scrape.
metric() {
	awk -v n="$2" '$1 == n { printf "%.0f\n", $2; found = 1 } END { if (!found) print 0 }' "$1"
}

# hist BEFORE AFTER NAME [BOUND]: count, sum, p50 and p99 bucket bounds of
# the observations of histogram NAME made between two scrapes, and how many
# of them were above BOUND (a bucket bound).
hist() {
	awk -v n="$3" -v over="${4:-+Inf}" '
		FNR == NR { before[$1] = $2; next }
		index($1, n "_bucket{") == 1 {
			le = $1; sub(/.*le="/, "", le); sub(/".*/, "", le)
			bound[++k] = le; cum[k] = $2 - before[$1]
			if (le == over) below = cum[k]
		}
		$1 == n "_sum" { sum = $2 - before[$1] }
		$1 == n "_count" { count = $2 - before[$1] }
		END {
			p50 = "-"; p99 = "-"
			for (i = 1; count > 0 && i <= k; i++) {
				if (p50 == "-" && cum[i] >= 0.5 * count) p50 = bound[i]
				if (p99 == "-" && cum[i] >= 0.99 * count) p99 = bound[i]
			}
			printf "%d %.6f %s %s %d\n", count, sum, p50, p99, count - below
		}' "$1" "$2"
}

# accepted FILE: the 2xx answers in a `replayguard load --json` summary.
accepted() {
	awk '/^    "2[0-9][0-9]/ { gsub(/[",]/, ""); n += $2 } END { print n + 0 }' "$1"
}

# commits NAME LOAD BEFORE AFTER SECONDS: one line on the group commits
# between two scrapes SECONDS apart.
commits() {
	local c s p50 p99 slow n bs b50 b99 fc fs f50 f99
	read -r c s p50 p99 slow < <(hist "$3" "$4" replayguard_disk_commit_seconds 0.025)
	read -r n bs b50 b99 _ < <(hist "$3" "$4" replayguard_disk_commit_batch_size)
	read -r fc fs f50 f99 _ < <(hist "$3" "$4" replayguard_disk_fsync_seconds)
	if ((c == 0)); then
		disk_lines+=("- $1, $2: no commits")
		return
	fi
	disk_lines+=("$(awk -v name="$1" -v load="$2" -v c="$c" -v s="$s" -v p50="$p50" -v p99="$p99" \
		-v bs="$bs" -v b50="$b50" -v b99="$b99" -v slow="$slow" -v secs="$5" \
		-v fc="${fc:-0}" -v fs="${fs:-0}" -v f50="${f50:--}" -v f99="${f99:--}" '
		function size(b) { return b == "+Inf" ? "> 1024" : "≤ " b }
		function ms(b) { return b == "+Inf" ? "> 1000 ms" : sprintf("≤ %g ms", 1000 * b) }
		BEGIN {
			printf "- %s, %s: %d commits, %.1f writes per commit (p50 %s, p99 %s), commit time (first write to sync) mean %.2f ms (p50 %s, p99 %s, %d over 25 ms), %.1f commits waiting for a sync on average",
				name, load, c, bs / c, size(b50), size(b99), 1000 * s / c, ms(p50), ms(p99), slow, s / secs
			if (fc > 0) printf "; %d log syncs (%.1f commits each), sync time mean %.2f ms (p50 %s, p99 %s)", fc, c / fc, 1000 * fs / fc, ms(f50), ms(f99)
		}')")
}

# cpu_ticks PID: the user and system CPU time PID has used, in clock ticks.
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
clk_tck="$(getconf CLK_TCK 2>/dev/null || echo 100)"

# written_bytes PID: the bytes of file pages PID has dirtied for storage
# (the kernel counts a page when it becomes dirty), 0 where unknown.
written_bytes() {
	awk '/^write_bytes:/ { print $2; found = 1 } END { if (!found) print 0 }' "/proc/$1/io" 2>/dev/null || echo 0
}
cpu_rows=()

# drive NAME METHOD URL PID [ADMIN]: one fixed-rate and one max-rate run of
# METHOD requests against URL, served by process PID (whose CPU time each
# run is noted); with ADMIN (a disk mode's admin address) the disk store's
# figures of each run are noted too.
drive() {
	local name=$1 method=$2 url=$3 server=$4 admin=${5:-} slug args
	slug="$(echo "$name-$method" | tr -c 'A-Za-z0-9\n' '-')-r$round"
	if [[ $method == POST ]]; then
		args=(-X POST -d "@$tmp/body" --idempotency-key=true)
	else
		args=(-X GET -d= --idempotency-key=false)
	fi
	if [[ -n "$admin" ]]; then
		scrape "$admin" "$tmp/$slug-start.prom"
	fi
	local prev="$tmp/$slug-start.prom" acc=0
	for load in fixed max; do
		local rate=$RATE label="$method $RATE req/s"
		if [[ $load == max ]]; then
			rate=0 label="$method max ($CONCURRENCY in flight)"
		fi
		log "$name, $label, $DURATION${round:+, round $round}"
		local ticks written
		ticks="$(cpu_ticks "$server")"
		written="$(written_bytes "$server")"
		"$tmp/replayguard" load --secret "$secret" --key-id "$key_id" "${args[@]}" \
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
		cpu_rows+=("$name" "$label" "${round:-—}" "$(($(cpu_ticks "$server") - ticks))" "$(($(written_bytes "$server") - written))" \
			"$(accepted "$tmp/$slug-$load.json")" \
			"$(awk '/"seconds"/ { gsub(/,/, ""); print $2 }' "$tmp/$slug-$load.json")")
		if [[ -n "$admin" ]]; then
			scrape "$admin" "$tmp/$slug-$load.prom"
			commits "$name, round $round" "$label" "$prev" "$tmp/$slug-$load.prom" \
				"$(awk '/"seconds"/ { gsub(/,/, ""); print $2 }' "$tmp/$slug-$load.json")"
			prev="$tmp/$slug-$load.prom"
			acc=$((acc + $(accepted "$tmp/$slug-$load.json")))
		fi
	done
	if [[ -n "$admin" ]]; then
		disk_bytes+=("$name" "$method" "$round" "$acc" "$(metric "$prev" replayguard_disk_live_bytes)" \
			"$(metric "$prev" replayguard_disk_file_bytes)")
	fi
}
disk_bytes=()

# gateway MODE METHOD: serves a generated config for MODE, drives it with
# METHOD requests, stops it. A disk mode gets a new directory of its own.
gateway() {
	local mode=$1 method=$2 name store nmode fsync="" redis=""
	case $mode in
	memory) name="memory" store=memory nmode=exact ;;
	disk) name="disk" store=disk nmode=exact fsync=true ;;
	disk-nofsync) name="disk, fsync off" store=disk nmode=exact fsync=false ;;
	redis-exact) name="Redis exact" store=redis nmode=exact redis=1 ;;
	redis-bloom) name="Redis bloom" store=redis nmode=bloom redis=1 ;;
	esac
	local base="$tmp/$mode-$method-r$round" data=""
	cat >"$base.yaml" <<-YAML
		listen: 127.0.0.1:0
		upstream: $upstream
		admin_listen: 127.0.0.1:0
		scheme: hmac
		keys:
		  - id: $key_id
		    secrets: ["$secret"]
		nonce: {store: $store, mode: $nmode}
		idempotency: {enabled: true, required: true, store: $store}
		log: {access: $LOG_ACCESS}
	YAML
	chmod 600 "$base.yaml"
	if [[ -n "$redis" ]]; then
		printf 'redis: {addrs: ["127.0.0.1:%s"], timeout: 1s}\n' "$redis_port" >>"$base.yaml"
	fi
	if [[ -n "$fsync" ]]; then
		data="$disk_root/$mode-$method-r$round"
		printf 'disk: {path: "%s", fsync: %s}\n' "$data" "$fsync" >>"$base.yaml"
	fi
	"$tmp/replayguard" serve --config "$base.yaml" >"$base.log" 2>&1 &
	local pid=$!
	pids+=("$pid")
	wait_for_line "$base.log" '"msg":"replayguard serving"' "$pid"
	local addr admin=""
	addr="$(grep -o '"listen":"[^"]*"' "$base.log" | head -n1 | cut -d'"' -f4)"
	if [[ -n "$data" ]]; then
		admin="$(grep -o '"admin_listen":"[^"]*"' "$base.log" | head -n1 | cut -d'"' -f4)"
	fi
	log "$name: gateway at http://$addr"
	drive "$name" "$method" "http://$addr" "$pid" "$admin"
	stop "$pid"
	if [[ -n "$data" ]]; then
		disk_bytes+=("$(du -sb "$data" | cut -f1)" "$(du -sB1 "$data" | cut -f1)")
		if [[ "${KEEP:-0}" != 1 ]]; then
			rm -rf "$data"
		fi
	fi
}

round=""
for method in $METHODS; do
	drive "no-op upstream alone" "$method" "$upstream" "$noop_pid"
done

redis_pid=""
if ((uses_redis)); then
	if ! command -v redis-server >/dev/null; then
		log "redis-server not found (apt-get install -y redis-server): Redis modes skipped"
		modes=()
		for mode in $MODES; do
			[[ $mode == redis* ]] || modes+=("$mode")
		done
		MODES="${modes[*]}"
	else
		for ((try = 0; try < 10; try++)); do
			redis_port=$((20000 + RANDOM % 40000))
			port_free "$redis_port" || continue
			mkdir -p "$tmp/redis"
			redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$tmp/redis" --save "" --appendonly no \
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
		log "redis-server at 127.0.0.1:$redis_port"
	fi
fi

for ((round = 1; round <= ROUNDS; round++)); do
	for method in $METHODS; do
		for mode in $MODES; do
			gateway "$mode" "$method"
		done
	done
done
if [[ -n "$redis_pid" ]]; then
	stop "$redis_pid"
fi
uptime_after="$(uptime)"
if ((uses_disk)); then
	probe after
fi

echo
replays="no replays"
if ((REPLAY_EVERY > 0)); then
	replays="every ${REPLAY_EVERY}th request a replay of the one before"
fi
echo "Load: $DURATION per run, $CONCURRENCY requests in flight at most, $ROUNDS round(s) of modes $MODES; POST with a $BODY_BYTES-byte body and a fresh Idempotency-Key, GET with no body and no Idempotency-Key; $replays; gateways with log.access: $LOG_ACCESS."
echo "uptime before: $uptime_before"
echo "uptime after:  $uptime_after"
echo
compare=()
for mode in $MODES; do
	case $mode in
	disk) compare+=(-compare "disk=memory") ;;
	disk-nofsync) compare+=(-compare "disk, fsync off=memory") ;;
	esac
done
if [[ " $MODES " != *" memory "* ]]; then
	compare=()
fi
"$tmp/loadtable" "${compare[@]+"${compare[@]}"}" "${rows[@]}"
if [[ -r /proc/self/stat ]]; then
	echo
	echo "CPU time and storage writes of the serving process (the gateway; the upstream in its own rows) per run, from /proc/PID/stat and /proc/PID/io (write_bytes: file pages the process dirtied, counted when dirtied — with fsync each commit re-dirties the pages the last fsync cleaned; without, a page rewritten before writeback counts once):"
	echo
	echo "| mode | load | round | CPU s | of one core | CPU µs per accepted request | KiB of file pages dirtied per accepted request |"
	echo "|---|---|---:|---:|---:|---:|---:|"
	for ((i = 0; i < ${#cpu_rows[@]}; i += 7)); do
		awk -v m="${cpu_rows[i]}" -v l="${cpu_rows[i + 1]}" -v r="${cpu_rows[i + 2]}" -v t="${cpu_rows[i + 3]}" \
			-v w="${cpu_rows[i + 4]}" -v a="${cpu_rows[i + 5]}" -v secs="${cpu_rows[i + 6]}" -v hz="$clk_tck" 'BEGIN {
				cpu = t / hz
				printf "| %s | %s | %s | %.2f | %.0f %% | %.0f | %.1f |\n", m, l, r, cpu, (secs > 0 ? 100 * cpu / secs : 0),
					(a > 0 ? 1e6 * cpu / a : 0), (a > 0 ? w / 1024 / a : 0) }'
	done
fi
if ((uses_disk)); then
	echo
	echo "Device fsync latency in the disk directory ($disk_fs on $disk_dev), bench/cmd/fsyncprobe:"
	echo
	for line in "${probes[@]}"; do
		echo "- $line"
	done
	echo
	echo "Disk store bytes per accepted request (both runs of one gateway, a data directory of its own; live = what the entries count against disk.max_bytes, file = the size of the store's files, allocated = their blocks on disk):"
	echo
	echo "| mode | method | round | accepted | live bytes | file bytes | allocated bytes | live B/req | file B/req | allocated B/req |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	for ((i = 0; i < ${#disk_bytes[@]}; i += 8)); do
		awk -v m="${disk_bytes[i]}" -v meth="${disk_bytes[i + 1]}" -v r="${disk_bytes[i + 2]}" -v a="${disk_bytes[i + 3]}" \
			-v live="${disk_bytes[i + 4]}" -v file="${disk_bytes[i + 6]}" -v alloc="${disk_bytes[i + 7]}" 'BEGIN {
				per = a > 0 ? a : 1
				printf "| %s | %s | %d | %d | %d | %d | %d | %.0f | %.0f | %.0f |\n", m, meth, r, a, live, file, alloc, live / per, file / per, alloc / per }'
	done
	echo
	echo "Disk store group commits, per run (from replayguard_disk_commit_seconds and replayguard_disk_commit_batch_size):"
	echo
	for line in "${disk_lines[@]}"; do
		echo "$line"
	done
fi
