#!/usr/bin/env bash
# Runs the whole test suite on this machine: unit, fuzz-seed and golden tests,
# ClickHouse package tests against a real ClickHouse server, the current-ClickHouse schema
# check through chDB, and the end-to-end tests against a real Apache Kafka 4.x
# broker. Installs and starts what is missing (idempotent).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

need() { command -v "$1" >/dev/null 2>&1 || { echo "test.sh: '$1' is required but not installed ($2)" >&2; exit 1; }; }
need go "Go 1.26+"
need java "OpenJDK 17+"
need mvn "Apache Maven"
need python3 "Python 3"

scripts/clickhouse.sh start
scripts/kafka.sh start
scripts/chdb.sh install

export USAGE_ROLLUP_REQUIRE_SERVICES=1
export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:${KAFKA_PORT:-9092}}"
export CLICKHOUSE_ADDR="${CLICKHOUSE_ADDR:-127.0.0.1:${CLICKHOUSE_PORT:-9000}}"

echo "== go vet"
go vet ./...
echo "== go test (KAFKA_BROKERS=$KAFKA_BROKERS CLICKHOUSE_ADDR=$CLICKHOUSE_ADDR)"
go test -count=1 -timeout 25m "$@" ./...
echo "== Helm chart: helm lint and rendered objects decoded into the Kubernetes API types"
deploy/helm/test.sh
echo "== fault-injection suite, short form (full form and docs/RELIABILITY.md: faults/run.sh)"
FAULTS_SHORT=1 FAULTS_REPORT="$repo/.run/faults/RELIABILITY-short.md" faults/run.sh
