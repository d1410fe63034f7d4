// Package e2e runs the consumer binary as separate processes against a real
// Apache Kafka broker and a real ClickHouse server, kills them, restarts them,
// resets their group and checks that the rollups stay exact.
//
// The tests need KAFKA_BROKERS and CLICKHOUSE_ADDR reachable (scripts/test.sh
// starts both). Without them they skip, unless USAGE_ROLLUP_REQUIRE_SERVICES=1.
package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/audit"
	"github.com/usage-rollup/usage-rollup/internal/chconn"
	"github.com/usage-rollup/usage-rollup/internal/kafkaoffsets"
	"github.com/usage-rollup/usage-rollup/internal/schema"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/servicetest"
)

var binary string // the consumer binary built once by TestMain

func TestMain(m *testing.M) {
	os.Exit(servicetest.RunWithConsumer(m, "../cmd/consumer", &binary, nil))
}

func randomName(prefix string) string {
	return fmt.Sprintf("%s_%d_%06d", prefix, time.Now().Unix(), rand.IntN(1_000_000))
}

// consumer is one running consumer process.
type consumer struct {
	*servicetest.Process
	t *testing.T
}

// startConsumer runs the binary with the base environment plus extra
// variables ("K=V"). Its output is printed if the test fails.
func startConsumer(t *testing.T, name string, env []string, extra ...string) *consumer {
	t.Helper()
	return &consumer{Process: servicetest.StartProcess(t, binary, nil, name, "", append(env, extra...)...), t: t}
}

// kill9 sends SIGKILL and waits for the process to be gone.
func (c *consumer) kill9() { c.Kill9() }

// term sends SIGTERM and requires a clean exit (status 0) within limit.
func (c *consumer) term(limit time.Duration) time.Duration {
	c.t.Helper()
	took, err := c.Term(limit)
	if err != nil {
		c.t.Fatal(err)
	}
	return took
}

// waitKilled waits until the process died of SIGKILL (the failpoint).
func (c *consumer) waitKilled(limit time.Duration) {
	c.t.Helper()
	killed, err := c.WaitExit(limit)
	if err != nil {
		c.t.Fatalf("%v; failpoint never fired", err)
	}
	if !killed {
		c.t.Fatalf("%s ended with %v, want death by SIGKILL", c.Name, c.Cmd.ProcessState)
	}
}

// openAudit creates and migrates the test database, as the consumers will,
// and returns a reader on it.
func openAudit(t *testing.T, s servicetest.Services, db string) *audit.Reader {
	t.Helper()
	cfg := chconn.DefaultConfig()
	cfg.Addr, cfg.Database = []string{s.ClickHouse}, db
	windows, err := aggregate.ParseWindows("1m,1h")
	if err != nil {
		t.Fatal(err)
	}
	conn, _, err := schema.Setup(context.Background(), cfg, schema.Config{Windows: windows}, zerolog.Nop())
	if err != nil {
		t.Fatalf("set up database %s: %v", db, err)
	}
	t.Cleanup(func() { conn.Close() })
	return audit.New(conn, windows)
}

// kafkaClient returns an admin client for the test broker.
func kafkaClient(s servicetest.Services) *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(s.Brokers...), Timeout: 10 * time.Second}
}

// endOffsets returns the high watermark of every partition.
func endOffsets(t *testing.T, c *kafka.Client, topic string, partitions int) map[int]int64 {
	t.Helper()
	ends, err := kafkaoffsets.Ends(context.Background(), c, topic, kafkaoffsets.Partitions(partitions)...)
	if err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	return ends
}

// resetGroup commits offset 0 for every partition, as
// `kafka-consumer-groups.sh --reset-offsets --to-earliest` does. The group
// must be empty.
func resetGroup(t *testing.T, c *kafka.Client, group, topic string, partitions int) {
	t.Helper()
	commits := make([]kafka.OffsetCommit, partitions)
	for p := range partitions {
		commits[p] = kafka.OffsetCommit{Partition: p, Offset: 0}
	}
	res, err := c.OffsetCommit(context.Background(), &kafka.OffsetCommitRequest{
		GroupID: group, GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{topic: commits},
	})
	if err != nil {
		t.Fatalf("reset group offsets: %v", err)
	}
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			t.Fatalf("reset offset of partition %d: %v", p.Partition, p.Error)
		}
	}
}

// eventually polls cond every 500ms until it returns "" or limit passes.
func eventually(t *testing.T, limit time.Duration, what string, cond func() string) time.Duration {
	t.Helper()
	start := time.Now()
	last := ""
	for time.Since(start) < limit {
		if last = cond(); last == "" {
			return time.Since(start)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s not reached within %s: %s", what, limit, last)
	return 0
}
