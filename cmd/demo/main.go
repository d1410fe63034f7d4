// Command demo runs the whole pipeline on one machine in one process: an
// in-process Kafka-protocol broker (kfake), the seeded load generator, the
// consumer and the local ClickHouse server. It prints the rollup read back
// from ClickHouse next to the generator's expected totals and exits non-zero
// if they differ. scripts/demo.sh starts ClickHouse and runs it.
package main

import (
	"context"
	"flag"
	"io"
	"os"

	"github.com/usage-rollup/usage-rollup/internal/cli"
)

func main() {
	cli.Main("demo", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Stdout, os.Stderr) })
}

// options are the demo's flags.
type options struct {
	clickhouse string
	database   string
	count      int
	seed       int64
	partitions int
	chunkSize  int64
	verbose    bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.clickhouse, "clickhouse", "127.0.0.1:9000", "ClickHouse native-protocol address")
	fs.StringVar(&o.database, "database", "usage_rollup_demo", "ClickHouse database (created if missing)")
	fs.IntVar(&o.count, "count", 50_000, "messages to generate")
	fs.Int64Var(&o.seed, "seed", 1, "generator seed")
	fs.IntVar(&o.partitions, "partitions", 4, "topic partitions")
	fs.Int64Var(&o.chunkSize, "chunk-size", 5_000, "CHUNK_SIZE of the consumer")
	fs.BoolVar(&o.verbose, "v", false, "print the consumer's logs")
	return o, fs.Parse(args)
}
