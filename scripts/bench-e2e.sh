#!/usr/bin/env bash
# End-to-end benchmark: usage-rollup vs ClickHouse's Kafka engine vs raw rows,
# on the same preloaded topic, Kafka broker and ClickHouse server. Starts (or
# reuses) scripts/kafka.sh and scripts/clickhouse.sh, builds cmd/consumer and
# cmd/benche2e, and prints one markdown table; the table and the run's details
# go to .run/bench/e2e-<run>.md, the processes' logs to .run/bench/e2e-<run>/.
#
#   scripts/bench-e2e.sh                                     # 1,000,000 events, P=4 and P=16
#   BENCH_EVENTS=50000 BENCH_PARTITIONS=4 scripts/bench-e2e.sh   # short form (CI), ~1-2 min
#
# Environment (each maps to a flag of cmd/benche2e; `go run ./cmd/benche2e -h`):
#   BENCH_EVENTS            events per topic (default 1000000)
#   BENCH_PARTITIONS        comma-separated partition counts (default 4,16)
#   BENCH_PIPELINES         subset of rollup,engine,raw (default all three)
#   BENCH_QUERY_RUNS        runs per analyst query, median reported (default 5)
#   BENCH_ENGINE_CONSUMERS  kafka_num_consumers of the Kafka engine (default 1)
#   BENCH_CONSUMER_ENV      extra K=V,K=V for the consumer (default: its defaults)
#   BENCH_TIMEOUT           bound on each pipeline's catch-up (default 15m)
#   BENCH_CONSUMER_REF      build cmd/consumer from this git revision (git archive, e.g. HEAD)
#   BENCH_COMPACT           1: run `consumer compact` after usage-rollup caught up, then measure
#                           instead of the working tree, e.g. to compare two revisions
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
if [[ -n ${BENCH_CONSUMER_REF:-} ]]; then
	src="$(mktemp -d)"
	trap 'rm -rf "$src"' EXIT
	git archive "$BENCH_CONSUMER_REF" | tar -x -C "$src"
	(cd "$src" && go build -o "$bin_dir/consumer" ./cmd/consumer)
	echo "bench-e2e.sh: consumer built from $BENCH_CONSUMER_REF ($(git rev-parse --short "$BENCH_CONSUMER_REF"))" >&2
else
	go build -o "$bin_dir/consumer" ./cmd/consumer
fi
go build -o "$bin_dir/benche2e" ./cmd/benche2e

ch_pid="$(cat "$run_dir/clickhouse/clickhouse-server.pid")"
kafka_version="$(find "$run_dir/kafka/libs" -name 'kafka-server-[0-9]*.jar' -printf '%f\n' | sed 's/^kafka-server-//; s/\.jar$//' | head -n1)"
"$bin_dir/benche2e" \
	-consumer "$bin_dir/consumer" \
	-clickhouse-pid "$ch_pid" \
	-kafka-version "${kafka_version:-unknown}" \
	-out "$out_dir" \
	-events "${BENCH_EVENTS:-1000000}" \
	-partitions "${BENCH_PARTITIONS:-4,16}" \
	-pipelines "${BENCH_PIPELINES:-rollup,engine,raw}" \
	-query-runs "${BENCH_QUERY_RUNS:-5}" \
	-engine-consumers "${BENCH_ENGINE_CONSUMERS:-1}" \
	-consumer-env "${BENCH_CONSUMER_ENV:-}" \
	-timeout "${BENCH_TIMEOUT:-15m}" \
	-compact="$([[ ${BENCH_COMPACT:-0} == 1 ]] && echo true || echo false)"
