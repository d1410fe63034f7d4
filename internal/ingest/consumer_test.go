package ingest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"go.uber.org/goleak"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/audit"
	"github.com/usage-rollup/usage-rollup/internal/events"
	"github.com/usage-rollup/usage-rollup/internal/kafkaoffsets"
	"github.com/usage-rollup/usage-rollup/internal/loadgen"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/check"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/rollupfake"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/servicetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newMemTable() *rollupfake.Table { return rollupfake.New(aggregate.DefaultConfig().Windows) }

// totals sums one window per workspace and model, like the analyst view.
func totals(t *rollupfake.Table, window string) []audit.GroupTotals {
	by := t.ByWorkspaceModel(window)
	out := make([]audit.GroupTotals, 0, len(by))
	for k, m := range by {
		out = append(out, audit.GroupTotals{WorkspaceID: k[0], Model: k[1], Measures: m})
	}
	return out
}

// caughtUp reports whether every partition's writes reached its end offset.
func caughtUp(t *rollupfake.Table, ends map[int]int64) bool {
	for p, end := range ends {
		if t.Next(int32(p)) < end {
			return false
		}
	}
	return true
}

// TestOutageIsRetriedAndShutdownFlushes runs the loop against a real broker
// with a writer that is down for a while mid-stream: no partition goroutine
// gives up (which would end the generation), nothing is committed past what
// was written, the sums come out exact once the writer is back, and
// cancelling Run flushes and commits everything.
func TestOutageIsRetriedAndShutdownFlushes(t *testing.T) {
	bs := servicetest.NeedKafka(t)
	ctx := context.Background()
	topic := fmt.Sprintf("consumer-test-%d-%d", time.Now().Unix(), rand.IntN(1e6))
	const partitions = 4
	if _, _, err := loadgen.EnsureTopic(ctx, bs, topic, partitions); err != nil {
		t.Fatal(err)
	}
	gen := loadgen.DefaultConfig()
	gen.Seed, gen.Count, gen.Start = 99, 6000, time.Now().Add(-time.Hour)
	want, err := loadgen.Produce(ctx, bs, topic, gen)
	if err != nil {
		t.Fatal(err)
	}

	table := newMemTable()
	table.Down.Store(true) // ClickHouse is down when the consumer starts
	cfg := DefaultConfig()
	cfg.Brokers, cfg.Topic, cfg.GroupID = bs, topic, topic
	cfg.FlushInterval, cfg.RetryBackoffMax = 200*time.Millisecond, 300*time.Millisecond
	cfg.SessionTimeout, cfg.HeartbeatInterval, cfg.ShutdownTimeout = 6*time.Second, time.Second, 5*time.Second
	agg := aggregate.DefaultConfig()
	agg.ChunkSize = 500
	reg := prometheus.NewRegistry()
	c, err := New(cfg, agg, events.DefaultConfig(), table, zerolog.Nop(), reg)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()

	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(bs...), Timeout: 10 * time.Second, Transport: transport}
	// Let every partition hit the outage several times.
	deadline := time.Now().Add(60 * time.Second)
	for p := range int32(partitions) {
		for table.FailedWrites(p) < 3 {
			if time.Now().After(deadline) {
				t.Fatalf("partition %d failed %d writes in 60s, want 3: did it stop retrying?", p, table.FailedWrites(p))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if got := servicetest.Committed(t, client, topic, topic, partitions); anyAbove(got, 0) {
		t.Fatalf("offsets committed while nothing was written: %v", got)
	}
	table.Down.Store(false)

	ends := map[int]int64{}
	for p := range partitions {
		ends[p] = endOffset(t, client, topic, p)
	}
	deadline = time.Now().Add(60 * time.Second)
	for !caughtUp(table, ends) {
		if time.Now().After(deadline) {
			t.Fatal("consumer did not catch up after the outage")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if diffs := check.Diff(&want, totals(table, "1h")); len(diffs) > 0 {
		t.Fatalf("sums after outage differ:\n%s", strings.Join(diffs, "\n"))
	}
	if n := table.Rejected(); n != want.Malformed {
		t.Errorf("rejected %d, want %d", n, want.Malformed)
	}

	start := time.Now()
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if took := time.Since(start); took > cfg.ShutdownTimeout {
		t.Errorf("shutdown took %s, over SHUTDOWN_TIMEOUT %s", took, cfg.ShutdownTimeout)
	}
	got := servicetest.Committed(t, client, topic, topic, partitions)
	for p, end := range ends {
		if got[p] != end {
			t.Errorf("partition %d committed %d after shutdown, want %d", p, got[p], end)
		}
	}
	if n, want := testutil.ToFloat64(c.metrics.writeErrors.WithLabelValues("transient")), float64(table.Failed.Load()); n != want {
		t.Errorf("transient write errors metric = %v, want %v (the writes the table refused)", n, want)
	}
	// One pass over the log, no restart: every message counted once.
	if n := testutil.ToFloat64(c.metrics.accepted); int(n) != want.Accepted {
		t.Errorf("accepted metric = %v, want %d", n, want.Accepted)
	}
	if n := testutil.ToFloat64(c.metrics.duplicates); int(n) != want.Duplicates {
		t.Errorf("duplicates metric = %v, want %d", n, want.Duplicates)
	}
	var rejected float64
	for _, r := range events.Reasons {
		rejected += testutil.ToFloat64(c.metrics.rejected.WithLabelValues(string(r)))
	}
	if int(rejected) != want.Malformed {
		t.Errorf("rejected metrics sum to %v, want %d", rejected, want.Malformed)
	}
}

func anyAbove(m map[int]int64, v int64) bool {
	for _, x := range m {
		if x > v {
			return true
		}
	}
	return false
}

func endOffset(t *testing.T, c *kafka.Client, topic string, p int) int64 {
	t.Helper()
	ends, err := kafkaoffsets.Ends(context.Background(), c, topic, p)
	if err != nil {
		t.Fatal(err)
	}
	return ends[p]
}

// TestDeadLettersCarryTheOriginalMessage checks the dead-letter path against
// the real broker: every malformed message arrives on the dead-letter topic
// byte for byte, with headers naming the reason and its source offset.
func TestDeadLettersCarryTheOriginalMessage(t *testing.T) {
	bs := servicetest.NeedKafka(t)
	ctx := context.Background()
	topic := fmt.Sprintf("consumer-dlq-%d-%d", time.Now().Unix(), rand.IntN(1e6))
	dlq := topic + "-dead"
	for _, tp := range []string{topic, dlq} {
		if _, _, err := loadgen.EnsureTopic(ctx, bs, tp, 2); err != nil {
			t.Fatal(err)
		}
	}
	gen := loadgen.DefaultConfig()
	gen.Seed, gen.Count, gen.Start, gen.MalformedRatio = 7, 2000, time.Now().Add(-time.Hour), 0.05
	want, err := loadgen.Produce(ctx, bs, topic, gen)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Brokers, cfg.Topic, cfg.GroupID, cfg.DeadLetterTopic = bs, topic, topic, dlq
	cfg.FlushInterval, cfg.SessionTimeout, cfg.HeartbeatInterval = 200*time.Millisecond, 6*time.Second, time.Second
	cfg.ShutdownTimeout = 5 * time.Second
	agg := aggregate.DefaultConfig()
	agg.ChunkSize = 500
	table := newMemTable()
	c, err := New(cfg, agg, events.DefaultConfig(), table, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	// Read the source topic to know each malformed message's bytes by offset.
	source := readAll(t, bs, topic, 2, want.Sent)
	dead := readAll(t, bs, dlq, 2, want.Malformed)
	if len(dead) != want.Malformed {
		t.Fatalf("dead letters = %d, want %d", len(dead), want.Malformed)
	}
	for _, m := range dead {
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		key := h["usage-rollup-source-partition"] + "/" + h["usage-rollup-source-offset"]
		orig, ok := source[key]
		if !ok {
			t.Fatalf("dead letter points at %s, which is not in the source topic", key)
		}
		if string(orig.Value) != string(m.Value) || string(orig.Key) != string(m.Key) {
			t.Errorf("dead letter %s differs from the original message", key)
		}
		if h["usage-rollup-reason"] == "" || h["usage-rollup-source-topic"] != topic || h["usage-rollup-rejected-at"] == "" {
			t.Errorf("dead letter %s headers incomplete: %v", key, h)
		}
	}
	if n := testutil.ToFloat64(c.metrics.deadLetters); int(n) != want.Malformed {
		t.Errorf("dead-letter metric = %v, want %d", n, want.Malformed)
	}
}

// readAll reads every partition of topic until it has n messages, keyed
// "partition/offset".
func readAll(t *testing.T, bs []string, topic string, partitions, n int) map[string]kafka.Message {
	t.Helper()
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(bs...), Timeout: 10 * time.Second, Transport: transport}
	readers := make([]*kafka.Reader, partitions)
	next := make([]int64, partitions)
	for p := range readers {
		readers[p] = kafka.NewReader(kafka.ReaderConfig{Brokers: bs, Topic: topic, Partition: p, MaxWait: time.Second})
		defer readers[p].Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out := map[string]kafka.Message{}
	for len(out) < n {
		for p, r := range readers {
			for end := endOffset(t, client, topic, p); next[p] < end; {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					t.Fatalf("read %s/%d: %v (have %d of %d)", topic, p, err, len(out), n)
				}
				out[fmt.Sprintf("%d/%d", p, m.Offset)] = m
				next[p] = m.Offset + 1
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("%s: %d of %d messages after 60s", topic, len(out), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return out
}
