#!/usr/bin/env bash
# Runs the speed and memory benchmarks of the per-event path and the
# aggregation state, and saves the output for benchstat comparisons:
#   scripts/bench.sh            # 5 runs each, output in .run/bench/<timestamp>.txt
#   COUNT=10 scripts/bench.sh
# Compare two runs with: go run golang.org/x/perf/cmd/benchstat@latest old.txt new.txt
# The summary at the end reads the medians of this run: the decoder against
# its encoding/json yardstick (same payloads, same run, so machine noise
# mostly cancels) and the hot path per event. docs/BENCHMARKS.md, "Hot path:
# decode and aggregate", has the targets and the last recorded numbers.
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
  # this matches BenchmarkDecode/*, BenchmarkDecodeEncodingJSON/*,
  # BenchmarkDecodeMix, BenchmarkAdd and BenchmarkDecodeAndAggregate.
  go test ./internal/events ./internal/aggregate -run '^$' -benchmem -count "$count" -bench 'Decode|Add'
  # Heap held at the group cap: one fill per run, the worst case of one new
  # group per event.
  go test ./internal/aggregate -run '^$' -bench 'BenchmarkStateMemory' -benchtime 1x -count "$count"
} | tee "$out"
echo "saved to $out"

# Summary: medians over the runs of each benchmark.
awk '
  /^Benchmark/ { name = $1; sub(/-[0-9]+$/, "", name); v[name] = v[name] " " $3 }
  function median(s,   a, n, i, j, t) {
    n = split(s, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END {
    print "\nsummary (medians):"
    for (name in v) if (name ~ /^BenchmarkDecode\//) {
      p = substr(name, length("BenchmarkDecode/") + 1)
      ref = "BenchmarkDecodeEncodingJSON/" p
      if (ref in v) printf "  decode %-6s %7.0f ns/event, encoding/json %7.0f ns: %.1fx\n", p, median(v[name]), median(v[ref]), median(v[ref]) / median(v[name])
    }
    if ("BenchmarkDecodeMix" in v) printf "  decode, generated mix   %7.0f ns/event\n", median(v["BenchmarkDecodeMix"])
    if ("BenchmarkDecodeAndAggregate" in v) { m = median(v["BenchmarkDecodeAndAggregate"]); printf "  decode+dedup+aggregate  %7.0f ns/event, %.2fM events/s per core\n", m, 1000 / m }
  }' "$out"
