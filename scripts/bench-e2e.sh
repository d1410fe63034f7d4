#!/usr/bin/env bash
# End-to-end benchmark: usage-rollup vs ClickHouse's Kafka engine vs raw rows,
# on the same preloaded topic, Kafka broker and ClickHouse server. Starts (or
# reuses) scripts/kafka.sh and scripts/clickhouse.sh, builds cmd/consumer and
# cmd/benche2e, and prints one markdown table; the table and the run's details
# go to .run/bench/e2e-<run>.md, the processes' logs to .run/bench/e2e-<run>/.
#
#   scripts/bench-e2e.sh                                     # 1,000,000 events, P=4 and P=16
#   BENCH_EVENTS=50000 BENCH_PARTITIONS=4 scripts/bench-e2e.sh   # short form (CI), ~1-2 min
#   BENCH_MODE=steady BENCH_CONSUMER_REF=HEAD BENCH_BASELINE_REF=HEAD~1 scripts/bench-e2e.sh
#                                # 200 events/s live at P=4,16,64, two revisions: INSERTs, parts, freshness
#
# Environment (each maps to a flag of cmd/benche2e; `go run ./cmd/benche2e -h`):
#   BENCH_MODE              batch (default: preloaded backlog, catch-up) or steady (live rate)
#   BENCH_EVENTS            batch: events per topic (default 1000000)
#   BENCH_PARTITIONS        comma-separated partition counts (default 4,16; steady 4,16,64)
#   BENCH_PIPELINES         subset of rollup,engine,raw (default all three)
#   BENCH_QUERY_RUNS        runs per analyst query, median reported (default 5)
#   BENCH_ENGINE_CONSUMERS  kafka_num_consumers of the Kafka engine (default 1)
#   BENCH_CONSUMER_ENV      extra K=V,K=V for the consumer (default: its defaults)
#   BENCH_TIMEOUT           bound on each pipeline's catch-up (default 15m)
#   BENCH_CONSUMER_REF      build cmd/consumer from this git revision (git archive, e.g. HEAD)
#   BENCH_COMPACT           1: run `consumer compact` after usage-rollup caught up, then measure
#                           instead of the working tree, e.g. to compare two revisions
#   BENCH_CPU_PROFILE       batch: CPU profile of this length (e.g. 20s) from each usage-rollup
#                           run, via DEBUG_PPROF, into the run's log directory (default none)
#   BENCH_RATE              steady: generated events per second (default 200)
#   BENCH_DURATION          steady: measured window (default 60s)
#   BENCH_WARMUP            steady: production before the window (default 15s)
#   BENCH_BASELINE_REF      steady: also run cmd/consumer built from this revision, before the
#                           other one at every partition count; the table gives their ratio
#   USAGE_ROLLUP_RUN_DIR    state root (default <repo>/.run)
#
# Topics, groups and databases of the previous run are removed when the next
# one starts, not at the end, so results can be inspected
# (clickhouse-client --query "SHOW DATABASES LIKE 'bench_e2e_%'").
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
run_dir="$(realpath -m "${USAGE_ROLLUP_RUN_DIR:-$repo/.run}")"
out_dir="$run_dir/bench"
bin_dir="$out_dir/bin"
mkdir -p "$bin_dir"

# One benchmark at a time: a second run would delete the first one's topics.
exec 9>"$out_dir/.e2e.lock"
flock -n 9 || { echo "bench-e2e.sh: another run holds $out_dir/.e2e.lock" >&2; exit 1; }

scripts/kafka.sh start
scripts/clickhouse.sh start
src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
# build_ref REV OUT: cmd/consumer of git revision REV, built from `git archive`.
build_ref() {
	rm -rf "$src/tree" && mkdir -p "$src/tree"
	git archive "$1" | tar -x -C "$src/tree"
	(cd "$src/tree" && go build -o "$2" ./cmd/consumer)
	echo "bench-e2e.sh: $(basename "$2") built from $1 ($(git rev-parse --short "$1"))" >&2
}
# label REV: the revision's name in the results, e.g. "HEAD 0935d31", "f27cf58".
label() {
	local short
	short="$(git rev-parse --short "$1")"
	if [[ $short == "$1" ]]; then echo "$short"; else echo "$1 $short"; fi
}
if [[ -n ${BENCH_CONSUMER_REF:-} ]]; then
	build_ref "$BENCH_CONSUMER_REF" "$bin_dir/consumer"
	consumer_label="$(label "$BENCH_CONSUMER_REF")"
else
	go build -o "$bin_dir/consumer" ./cmd/consumer
	consumer_label="working tree"
fi
baseline_args=()
if [[ -n ${BENCH_BASELINE_REF:-} ]]; then
	build_ref "$BENCH_BASELINE_REF" "$bin_dir/consumer-baseline"
	baseline_args=(-baseline "$bin_dir/consumer-baseline"
		-baseline-label "$(label "$BENCH_BASELINE_REF")")
fi
go build -o "$bin_dir/benche2e" ./cmd/benche2e

ch_pid="$(cat "$run_dir/clickhouse/clickhouse-server.pid")"
kafka_version="$(find "$run_dir/kafka/libs" -name 'kafka-server-[0-9]*.jar' -printf '%f\n' | sed 's/^kafka-server-//; s/\.jar$//' | head -n1)"
"$bin_dir/benche2e" \
	-mode "${BENCH_MODE:-batch}" \
	-consumer "$bin_dir/consumer" \
	-consumer-label "$consumer_label" \
	"${baseline_args[@]}" \
	-clickhouse-pid "$ch_pid" \
	-kafka-version "${kafka_version:-unknown}" \
	-out "$out_dir" \
	-events "${BENCH_EVENTS:-1000000}" \
	-partitions "${BENCH_PARTITIONS:-}" \
	-pipelines "${BENCH_PIPELINES:-rollup,engine,raw}" \
	-query-runs "${BENCH_QUERY_RUNS:-5}" \
	-engine-consumers "${BENCH_ENGINE_CONSUMERS:-1}" \
	-consumer-env "${BENCH_CONSUMER_ENV:-}" \
	-timeout "${BENCH_TIMEOUT:-15m}" \
	-cpu-profile "${BENCH_CPU_PROFILE:-0}" \
	-rate "${BENCH_RATE:-200}" \
	-duration "${BENCH_DURATION:-60s}" \
	-warmup "${BENCH_WARMUP:-15s}" \
	-compact="$([[ ${BENCH_COMPACT:-0} == 1 ]] && echo true || echo false)"
