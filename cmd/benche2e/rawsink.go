package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/usage-rollup/usage-rollup/internal/bench"
)

// rawSinkCommand runs the raw-rows sink in its own process, so that /proc
// gives its CPU time alone.
const rawSinkCommand = "rawsink"

func runRawSink(ctx context.Context, args []string) error {
	var s bench.RawSink
	var brokers string
	fs := flag.NewFlagSet(rawSinkCommand, flag.ContinueOnError)
	fs.StringVar(&brokers, "brokers", "127.0.0.1:9092", "comma-separated Kafka brokers")
	fs.StringVar(&s.Topic, "topic", "", "topic to consume")
	fs.StringVar(&s.Group, "group", "", "consumer group")
	fs.StringVar(&s.ClickHouse, "clickhouse", "127.0.0.1:9000", "ClickHouse native-protocol address")
	fs.StringVar(&s.Database, "database", "", "database holding raw_events (created by the caller)")
	fs.IntVar(&s.BatchRows, "batch", 100_000, "rows per insert")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s.Brokers = splitList(brokers)
	if s.Topic == "" || s.Group == "" || s.Database == "" || s.BatchRows < 1 || len(s.Brokers) == 0 {
		return fmt.Errorf("%s: -brokers, -topic, -group, -database and a positive -batch are required", rawSinkCommand)
	}
	return s.Run(ctx)
}
