#!/usr/bin/env bash
# Runs every benchmark -count times in one process run, then prints the
# benchstat table and the goal ratios. Usage: ./run.sh [COUNT] [REGEXP]
set -euo pipefail
cd "$(dirname "$0")"
count="${1:-6}"
pattern="${2:-.}"
out="results-$(date -u +%Y%m%dT%H%M%SZ).txt"
go test -run '^$' -bench "$pattern" -count "$count" -benchtime "${BENCHTIME:-1s}" . | tee "$out"
echo
go tool benchstat "$out"
go run ./cmd/ratios < "$out"
echo "raw results: bench/$out"
