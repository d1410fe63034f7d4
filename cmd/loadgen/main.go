// Command loadgen writes a seeded stream of synthetic usage events to Kafka and
// prints the totals a correct consumer must end up with.
//
//	go run ./cmd/loadgen -count 100000 -create-partitions 4 -expected /tmp/expected.json
//
// The same -seed and -start reproduce the same messages byte for byte; a new
// seed gives new event ids, so runs with different seeds never deduplicate
// against each other.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/cli"

	"github.com/usage-rollup/usage-rollup/internal/loadgen"
)

func main() {
	cli.Main("loadgen", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Stdout, os.Stderr) })
}

type options struct {
	brokers          string
	topic            string
	createPartitions int
	expectedFile     string
	start            string
	dryRun           bool
	cfg              loadgen.Config
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := options{cfg: loadgen.DefaultConfig()}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.brokers, "brokers", "127.0.0.1:9092", "comma-separated Kafka bootstrap brokers")
	fs.StringVar(&o.topic, "topic", "usage-events", "topic to write to")
	fs.IntVar(&o.createPartitions, "create-partitions", 0, "create the topic with this many partitions if missing (0: topic must exist)")
	fs.StringVar(&o.expectedFile, "expected", "", "write the expected totals as JSON to this file")
	fs.StringVar(&o.start, "start", "", "event time of the first event, RFC3339 (default: now when -rate is set, else now minus the stream's span so it ends about now)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "write message values to stdout, one per line, instead of Kafka; the table goes to stderr")
	c := &o.cfg
	fs.Int64Var(&c.Seed, "seed", c.Seed, "random seed; the same seed and -start reproduce the same messages")
	fs.IntVar(&c.Count, "count", c.Count, "messages to send, duplicates and malformed included")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "messages per second (0: as fast as possible)")
	fs.DurationVar(&c.EventInterval, "interval", c.EventInterval, "mean event-time gap between events (0: 1/rate, or 10ms unpaced)")
	fs.Float64Var(&c.DuplicateRatio, "dup-ratio", c.DuplicateRatio, "share of messages that re-send a recent event with the same id")
	fs.Float64Var(&c.LateRatio, "late-ratio", c.LateRatio, "share of events timestamped 1-3h in the past")
	fs.Float64Var(&c.MalformedRatio, "malformed-ratio", c.MalformedRatio, "share of new messages that must be rejected")
	fs.Float64Var(&c.CamelRatio, "camel-ratio", c.CamelRatio, "share of events with camelCase field names")
	fs.Float64Var(&c.ChatRatio, "chat-ratio", c.ChatRatio, "share of chat/embedding events with prompt_tokens/completion_tokens usage")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	switch {
	case o.start != "":
		t, err := time.Parse(time.RFC3339Nano, o.start)
		if err != nil {
			return o, fmt.Errorf("-start: %w", err)
		}
		c.Start = t
	case c.Rate > 0:
		c.Start = time.Now()
	default:
		c.Start = time.Now().Add(-c.Span())
	}
	if o.createPartitions < 0 {
		return o, fmt.Errorf("-create-partitions must be >= 0, got %d", o.createPartitions)
	}
	return o, c.Validate()
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	var exp loadgen.Expected
	table := stdout
	if o.dryRun {
		table = stderr
		exp, err = loadgen.Generate(o.cfg, func(_, value []byte) error {
			_, err := fmt.Fprintf(stdout, "%s\n", value)
			return err
		})
	} else {
		exp, err = produce(ctx, o, stderr)
	}
	if err != nil {
		return err
	}
	if o.expectedFile != "" {
		if err := writeExpected(o.expectedFile, &exp); err != nil {
			return err
		}
	}
	return exp.WriteTable(table)
}

func produce(ctx context.Context, o options, log io.Writer) (loadgen.Expected, error) {
	brokers := strings.Split(o.brokers, ",")
	if o.createPartitions > 0 {
		created, n, err := loadgen.EnsureTopic(ctx, brokers, o.topic, o.createPartitions)
		if err != nil {
			return loadgen.Expected{}, err
		}
		verb := "exists"
		if created {
			verb = "created"
		}
		fmt.Fprintf(log, "topic %s %s with %d partitions\n", o.topic, verb, n)
	}
	fmt.Fprintf(log, "producing %d messages to %s (seed %d, first event %s)\n",
		o.cfg.Count, o.topic, o.cfg.Seed, o.cfg.Start.UTC().Format(time.RFC3339))
	begin := time.Now()
	exp, err := loadgen.Produce(ctx, brokers, o.topic, o.cfg)
	if err != nil {
		return exp, fmt.Errorf("produce (%d messages generated): %w", exp.Sent, err)
	}
	elapsed := time.Since(begin)
	fmt.Fprintf(log, "produced %d messages in %s (%.0f/s)\n", exp.Sent, elapsed.Round(time.Millisecond),
		float64(exp.Sent)/elapsed.Seconds())
	return exp, nil
}

func writeExpected(path string, exp *loadgen.Expected) error {
	b, err := json.MarshalIndent(exp, "", "  ")
	if err != nil {
		return fmt.Errorf("encode expected totals: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write expected totals: %w", err)
	}
	return nil
}
