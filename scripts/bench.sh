#!/usr/bin/env bash
# Runs the speed and memory benchmarks of the per-event path and the
# aggregation state, and saves the output for benchstat comparisons:
#   scripts/bench.sh            # 5 runs each, output in .run/bench/<timestamp>.txt
#   COUNT=10 scripts/bench.sh
# Compare two runs with: go run golang.org/x/perf/cmd/benchstat@latest old.txt new.txt
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
count="${COUNT:-5}"
out_dir="${USAGE_ROLLUP_RUN_DIR:-$repo/.run}/bench"
mkdir -p "$out_dir"
out="$out_dir/$(date -u +%Y%m%dT%H%M%SZ).txt"
{
  echo "# $(go version); $(nproc) CPUs; $(date -u +%FT%TZ)"
  # Throughput and allocations of decode, dedup and aggregation.
  # -bench splits its pattern at '/' into levels, so keep it slash-free:
  # this matches BenchmarkDecode/*, BenchmarkAdd and BenchmarkDecodeAndAggregate.
  go test ./internal/events ./internal/aggregate -run '^$' -benchmem -count "$count" -bench 'Decode|Add'
  # Heap held at the group cap: one fill per run, the worst case of one new
  # group per event.
  go test ./internal/aggregate -run '^$' -bench 'BenchmarkStateMemory' -benchtime 1x -count "$count"
} | tee "$out"
echo "saved to $out"
