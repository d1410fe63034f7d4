#!/usr/bin/env bash
# One-command demo: starts a local ClickHouse (installing it if needed), runs an
# in-process Kafka broker, streams synthetic usage through the consumer and
# prints the rollup read back from ClickHouse next to the generator's totals.
# Extra arguments go to cmd/demo (see `go run ./cmd/demo -h`).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
command -v go >/dev/null 2>&1 || { echo "demo.sh: Go 1.26+ is required" >&2; exit 1; }
scripts/clickhouse.sh start
exec go run ./cmd/demo -clickhouse "127.0.0.1:${CLICKHOUSE_PORT:-9000}" "$@"
