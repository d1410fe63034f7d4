package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/audit"
	"github.com/usage-rollup/usage-rollup/internal/chconn"
	"github.com/usage-rollup/usage-rollup/internal/events"
	"github.com/usage-rollup/usage-rollup/internal/ingest"
	"github.com/usage-rollup/usage-rollup/internal/kafkaoffsets"
	"github.com/usage-rollup/usage-rollup/internal/loadgen"
	"github.com/usage-rollup/usage-rollup/internal/schema"
	"github.com/usage-rollup/usage-rollup/internal/sink"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/check"
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	begin := time.Now()
	// A fresh topic per run: the rollup tables are filtered by topic, so
	// earlier demo runs in the same database do not mix in.
	topic := fmt.Sprintf("usage-events-demo-%d", begin.Unix())
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(o.partitions), topic))
	if err != nil {
		return fmt.Errorf("start in-process kafka: %w", err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	fmt.Fprintf(stdout, "in-process Kafka at %v, topic %s with %d partitions\n", brokers, topic, o.partitions)

	gen := loadgen.DefaultConfig()
	gen.Seed, gen.Count, gen.Start = o.seed, o.count, begin.Add(-30*time.Minute)
	want, err := loadgen.Produce(ctx, brokers, topic, gen)
	if err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	fmt.Fprintf(stdout, "produced %d messages (%d distinct events, %d duplicates, %d malformed, %d late) in %s\n",
		want.Sent, want.Accepted, want.Duplicates, want.Malformed, want.Mix.Late, time.Since(begin).Round(time.Millisecond))

	logOut := io.Discard
	if o.verbose {
		logOut = stderr
	}
	log := zerolog.New(logOut).With().Timestamp().Logger()
	windows := aggregate.DefaultConfig().Windows
	chc := chconn.DefaultConfig()
	chc.Addr, chc.Database = []string{o.clickhouse}, o.database
	conn, sch, err := schema.Setup(ctx, chc, schema.Config{Windows: windows}, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	ac := aggregate.DefaultConfig()
	ac.ChunkSize = o.chunkSize
	dc := events.DefaultConfig()
	names := make([]string, len(windows))
	for i, w := range windows {
		names[i] = w.Name
	}
	layout := schema.NewLayout(ac.ChunkSize, ac.MaxGroups, names, dc.MaxFutureSkew, dc.MaxMessageBytes)
	if err := sch.EnsureLayout(ctx, topic, layout); err != nil {
		return err
	}
	snk, err := sink.New(conn, sink.Config{Windows: windows})
	if err != nil {
		return err
	}
	rd := audit.New(conn, windows)

	cc := ingest.DefaultConfig()
	cc.Brokers, cc.Topic, cc.GroupID, cc.FlushInterval = brokers, topic, "usage-rollup-demo", time.Second
	c, err := ingest.New(cc, ac, events.DefaultConfig(), snk, log, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	consumeCtx, stopConsumer := context.WithCancel(ctx)
	consumed := make(chan error, 1)
	go func() { consumed <- c.Run(consumeCtx) }()
	start := time.Now()
	waitErr := waitCaughtUp(ctx, rd, brokers, topic, o.partitions)
	stopConsumer()
	if err := <-consumed; err != nil {
		return err
	}
	if waitErr != nil {
		return waitErr
	}
	fmt.Fprintf(stdout, "consumer caught up in %s\n\n", time.Since(start).Round(time.Millisecond))

	got, err := rd.TotalsByWorkspaceModel(ctx, "1h", topic)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "SELECT workspace_id, model, sum(...) FROM %s.usage_1h WHERE topic = '%s' GROUP BY workspace_id, model\n", o.database, topic)
	if err := check.WriteTable(stdout, &want, got); err != nil {
		return err
	}
	rejected, err := rd.RejectedCount(ctx, topic)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nusage_rejected rows: %d (malformed messages sent: %d)\n", rejected, want.Malformed)
	diffs := check.Diff(&want, got)
	if len(diffs) > 0 || rejected != uint64(want.Malformed) {
		return fmt.Errorf("rollup differs from the generator's totals: %v", diffs)
	}
	fmt.Fprintf(stdout, "every workspace/model matches exactly; total %s\n", time.Since(begin).Round(time.Millisecond))
	return nil
}

// waitCaughtUp waits until ClickHouse holds progress up to every partition's end.
func waitCaughtUp(ctx context.Context, rd *audit.Reader, brokers []string, topic string, partitions int) error {
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	ends, err := kafkaoffsets.Ends(ctx, client, topic, kafkaoffsets.Partitions(partitions)...)
	if err != nil {
		return fmt.Errorf("list end offsets: %w", err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		prog, err := rd.Progress(ctx, topic)
		if err != nil {
			return err
		}
		done := 0
		for _, p := range prog {
			if p.NextOffset >= ends[int(p.Partition)] {
				done++
			}
		}
		if done == len(ends) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("consumer did not catch up within 2m (%d of %d partitions done)", done, len(ends))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
