// Command benche2e is the end-to-end benchmark (scripts/bench-e2e.sh runs
// it): it preloads a topic with N clean generated events and runs three
// pipelines over it, each with a fresh group and database on the same Kafka
// broker and ClickHouse server:
//
//   - usage-rollup, the cmd/consumer binary with its defaults;
//   - ClickHouse's Kafka table engine with a materialized view per window
//     into SummingMergeTree tables;
//   - a raw-rows sink, one row per event (what generic sinks do), run as a
//     child process of this command (`benche2e rawsink`).
//
// Each is timed until its group's committed offsets reach the log end on
// every partition; CPU comes from /proc/<pid>/stat. Then it counts stored
// rows per group, times the analyst query and checks the sums against the
// generator's expected totals. It prints one markdown table and writes it,
// with the run's details, to <out>/e2e-<run>.md.
//
// With -mode steady it runs cmd/consumer (and a -baseline binary, to compare
// two revisions) against a live stream instead: -rate events per second
// produced to a fresh topic per partition count, and measures over a window
// the INSERTs ClickHouse receives per table (a materialized-view probe), the
// parts they create (block numbers), and event-to-queryable latency (a marker
// event per second, polled in usage_1m). Results go to <out>/steady-<run>.md.
//
// Databases, topics and groups of earlier runs (prefixes bench_e2e_ and
// bench-e2e-; bench_steady_ and bench-steady- in steady mode) are dropped at
// the start of a run of the same mode, not at its end, so that a run's
// results can be inspected afterwards.
//
//	benche2e -consumer ./consumer -clickhouse-pid $(cat .run/clickhouse/clickhouse-server.pid)
package main

import (
	"context"
	"os"

	"github.com/usage-rollup/usage-rollup/internal/cli"
)

func main() {
	cli.Main("benche2e", func(ctx context.Context) error {
		if len(os.Args) > 1 && os.Args[1] == rawSinkCommand {
			return runRawSink(ctx, os.Args[2:])
		}
		return run(ctx, os.Args[1:], os.Stdout)
	})
}
