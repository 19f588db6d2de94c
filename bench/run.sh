#!/usr/bin/env bash
# Runs every benchmark -count times in one process run, then prints the
# benchstat table and the goal ratios. The machine's load average is printed
# before and after: the numbers are only as quiet as the machine was.
# Usage: ./run.sh [COUNT] [REGEXP]
set -euo pipefail
cd "$(dirname "$0")"
count="${1:-6}"
pattern="${2:-.}"
out="results-$(date -u +%Y%m%dT%H%M%SZ).txt"
echo "uptime before: $(uptime)"
go test -run '^$' -bench "$pattern" -count "$count" -benchtime "${BENCHTIME:-1s}" . | tee "$out"
echo "uptime after: $(uptime)"
echo
go tool benchstat "$out"
go run ./cmd/ratios < "$out"
echo "raw results: bench/$out (Markdown goal table: go run ./cmd/ratios -markdown < bench/$out)"
