#!/usr/bin/env bash
# faults/run.sh — run the fault-injection suite (faults/*_test.go, build tag
# `faults`) against a real Kafka broker and ClickHouse server, and write
# docs/RELIABILITY.md from the measured results.
#
#   faults/run.sh                 full form (~15-20 min on 2 cores)
#   FAULTS_SHORT=1 faults/run.sh  short form, as in CI (a few minutes)
#   faults/run.sh -run 'TestF0[67]'   extra arguments go to `go test`
#
# Services are started with scripts/kafka.sh and scripts/clickhouse.sh (both
# idempotent). Cases kill, pause and restart them and bring them back before
# they end. Consumer logs of every case are kept in .run/faults/logs.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
report="${FAULTS_REPORT:-$repo/docs/RELIABILITY.md}"
logs="$repo/.run/faults/logs"

"$repo/scripts/kafka.sh" start
"$repo/scripts/clickhouse.sh" start
rm -rf "$logs"
mkdir -p "$logs"

cd "$repo/faults"
FAULTS_REPORT="$report" FAULTS_LOG_DIR="$logs" USAGE_ROLLUP_REQUIRE_SERVICES=1 \
	go test -tags faults -count=1 -timeout 60m -v . "$@" 2>&1 | tee "$logs/go-test.log"
status=${PIPESTATUS[0]}
echo "run.sh: report written to $report; logs in $logs" >&2
exit "$status"
