package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/usage-rollup/usage-rollup/internal/audit"
	"github.com/usage-rollup/usage-rollup/internal/loadgen"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/servicetest"
)

// eventValue is a valid usage event with a unique id; every event has
// input_tokens 10, so a sum of input tokens is 10 times the event count.
func eventValue(id string, at time.Time) []byte {
	return fmt.Appendf(nil, `{"id":%q,"timestamp":%q,"workspace_id":"ws_e2e","project_id":"p","api_key_id":"k",`+
		`"provider":"openai","model":"gpt-image-1","endpoint":"images.generations","status_code":200,"latency_ms":7,`+
		`"usage":{"input_tokens":10,"output_tokens":3,"total_tokens":13}}`, id, at.UTC().Format(time.RFC3339Nano))
}

// produceEvents writes n events with ids prefix_0 .. prefix_<n-1> to partition 0.
func produceEvents(t *testing.T, svc servicetest.Services, topic, prefix string, n int) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(svc.Brokers...), Topic: topic, Balancer: &kafka.LeastBytes{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond, BatchSize: 1000}
	defer w.Close()
	at := time.Now().Add(-time.Minute)
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{Value: eventValue(fmt.Sprintf("%s_%d", prefix, i), at)}
	}
	// A topic created a moment ago may not be in every metadata answer yet.
	var err error
	for range 20 {
		if err = w.WriteMessages(context.Background(), msgs...); !errors.Is(err, kafka.UnknownTopicOrPartition) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
}

func baseEnv(svc servicetest.Services, topic, group, db string, extra ...string) []string {
	return append([]string{
		"KAFKA_BROKERS=" + strings.Join(svc.Brokers, ","),
		"KAFKA_TOPIC=" + topic,
		"KAFKA_GROUP_ID=" + group,
		"KAFKA_SESSION_TIMEOUT=6s",
		"KAFKA_HEARTBEAT_INTERVAL=1s",
		"KAFKA_REBALANCE_TIMEOUT=20s",
		"CLICKHOUSE_ADDR=" + svc.ClickHouse,
		"CLICKHOUSE_DATABASE=" + db,
		"SHUTDOWN_TIMEOUT=5s",
		"LOG_LEVEL=info",
	}, extra...)
}

// totalRequests is sum(requests) and sum(input_tokens) over usage_<window> for topic.
func totalRequests(t *testing.T, rd *audit.Reader, window, topic string) (req, in uint64) {
	t.Helper()
	groups, err := rd.TotalsByWorkspaceModel(context.Background(), window, topic)
	if err != nil {
		t.Fatalf("read %s totals: %v", window, err)
	}
	for _, g := range groups {
		req += g.Measures.Requests
		in += g.Measures.InputTokens
	}
	return req, in
}

func waitCommitted(t *testing.T, kc *kafka.Client, group, topic string, want int64) {
	t.Helper()
	eventually(t, 60*time.Second, fmt.Sprintf("committed offset %d", want), func() string {
		if got := servicetest.Committed(t, kc, group, topic, 1)[0]; got != want {
			return fmt.Sprintf("committed %d", got)
		}
		return ""
	})
}

func newAdmin(t *testing.T, svc servicetest.Services) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(svc.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// logCase is where each of these tests starts: the services, a fresh
// one-partition topic, a group and a database named after the test, the
// database's reader and a Kafka client.
type logCase struct {
	svc              servicetest.Services
	topic, db, group string
	rd               *audit.Reader
	kc               *kafka.Client
}

func newLogCase(t *testing.T, prefix string) logCase {
	t.Helper()
	svc := servicetest.Need(t)
	lc := logCase{svc: svc, topic: randomName(prefix), db: randomName(prefix), group: randomName(prefix), kc: kafkaClient(svc)}
	if _, _, err := loadgen.EnsureTopic(context.Background(), svc.Brokers, lc.topic, 1); err != nil {
		t.Fatal(err)
	}
	lc.rd = openAudit(t, svc, lc.db)
	return lc
}

// TestDeletedLogHeadKeepsCountedEvents is the reproduction of a silent
// undercount: with CHUNK_SIZE 100, 150 events are written, the consumer stops,
// DeleteRecords removes offsets below 120 (as retention does), one more event
// arrives and the consumer restarts. Re-reading the resume chunk from offset
// 120 used to write a 31-event aggregate over the 50-event one. Then the group
// is reset to the earliest offset and replays: no sum may go down.
func TestDeletedLogHeadKeepsCountedEvents(t *testing.T) {
	lc := newLogCase(t, "head")
	ctx := context.Background()
	env := baseEnv(lc.svc, lc.topic, lc.group, lc.db, "CHUNK_SIZE=100", "FLUSH_INTERVAL=1s")

	produceEvents(t, lc.svc, lc.topic, "a", 150)
	c := startConsumer(t, "head1", env)
	waitCommitted(t, lc.kc, lc.group, lc.topic, 150)
	c.term(30 * time.Second)
	if req, _ := totalRequests(t, lc.rd, "1h", lc.topic); req != 150 {
		t.Fatalf("before the deletion: sum(requests) = %d, want 150", req)
	}

	adm := newAdmin(t, lc.svc)
	offsets := kadm.Offsets{}
	offsets.AddOffset(lc.topic, 0, 120, -1)
	res, err := adm.DeleteRecords(ctx, offsets)
	if err != nil {
		t.Fatalf("delete records: %v", err)
	}
	if err := res.Error(); err != nil {
		t.Fatalf("delete records: %v", err)
	}
	produceEvents(t, lc.svc, lc.topic, "b", 1)

	c = startConsumer(t, "head2", env)
	waitCommitted(t, lc.kc, lc.group, lc.topic, 151)
	c.term(30 * time.Second)
	for _, w := range []string{"1m", "1h"} {
		if req, in := totalRequests(t, lc.rd, w, lc.topic); req != 151 || in != 1510 {
			t.Fatalf("after the deletion: usage_%s has %d requests and %d input tokens, want 151 and 1510", w, req, in)
		}
	}
	if !strings.Contains(c.Out.String(), "continuing it from stored rows") {
		t.Fatal("the restarted consumer did not say it continued the chunk from stored rows")
	}

	// A group reset to the earliest offset replays what is left (120..150):
	// the sums must stay.
	resetGroup(t, lc.kc, lc.group, lc.topic, 1)
	c = startConsumer(t, "head3", env)
	time.Sleep(3 * time.Second) // a replay writes within a flush interval
	waitCommitted(t, lc.kc, lc.group, lc.topic, 151)
	c.term(30 * time.Second)
	for _, w := range []string{"1m", "1h"} {
		if req, in := totalRequests(t, lc.rd, w, lc.topic); req != 151 || in != 1510 {
			t.Fatalf("after a replay from earliest: usage_%s has %d requests and %d input tokens, want 151 and 1510", w, req, in)
		}
	}
}

// TestTransactionsAreReadCommitted has a real transactional producer abort
// 100 events and commit 10; a non-transactional producer adds 5. Only the
// 15 may be counted, and the commit and abort markers are not messages:
// usage_rejected stays empty.
func TestTransactionsAreReadCommitted(t *testing.T) {
	lc := newLogCase(t, "txn")
	ctx := context.Background()

	cl, err := kgo.NewClient(kgo.SeedBrokers(lc.svc.Brokers...), kgo.DefaultProduceTopic(lc.topic),
		kgo.TransactionalID(randomName("txn")), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	at := time.Now().Add(-time.Minute)
	txn := func(prefix string, n int, commit kgo.TransactionEndTry) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			r := &kgo.Record{Value: eventValue(fmt.Sprintf("%s_%d", prefix, i), at), Partition: 0}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := cl.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
	}
	txn("aborted", 100, kgo.TryAbort)
	txn("committed", 10, kgo.TryCommit)
	produceEvents(t, lc.svc, lc.topic, "plain", 5)

	end := endOffsets(t, lc.kc, lc.topic, 1)[0] // 100 + marker + 10 + marker + 5 = 117
	c := startConsumer(t, "txn1", baseEnv(lc.svc, lc.topic, lc.group, lc.db, "FLUSH_INTERVAL=1s"))
	waitCommitted(t, lc.kc, lc.group, lc.topic, end)
	c.term(30 * time.Second)
	for _, w := range []string{"1m", "1h"} {
		if req, in := totalRequests(t, lc.rd, w, lc.topic); req != 15 || in != 150 {
			t.Fatalf("usage_%s has %d requests and %d input tokens, want 15 and 150 (aborted events counted?)", w, req, in)
		}
	}
	if n, err := lc.rd.RejectedCount(ctx, lc.topic); err != nil || n != 0 {
		t.Fatalf("usage_rejected has %d rows (err %v), want 0: transaction markers are not messages", n, err)
	}
}

// TestCommittedOffsetPastLogEndIsLoud commits an offset past the log end,
// as a re-created topic or a truncated log leaves it. The consumer must not
// wait there silently: it logs an error and sets
// usage_rollup_offset_out_of_range for the partition, and writes nothing.
func TestCommittedOffsetPastLogEndIsLoud(t *testing.T) {
	lc := newLogCase(t, "oor")
	ctx := context.Background()
	produceEvents(t, lc.svc, lc.topic, "a", 10)
	res, err := lc.kc.OffsetCommit(ctx, &kafka.OffsetCommitRequest{GroupID: lc.group, GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{lc.topic: {{Partition: 0, Offset: 5000}}}})
	if err != nil || res.Topics[lc.topic][0].Error != nil {
		t.Fatalf("commit 5000: %v %v", err, res)
	}
	env := baseEnv(lc.svc, lc.topic, lc.group, lc.db, "FLUSH_INTERVAL=1s")
	c := startConsumer(t, "oor1", env)
	eventually(t, 60*time.Second, "out-of-range metric", func() string {
		body, _ := c.Scrape()
		if !strings.Contains(body, `usage_rollup_offset_out_of_range{partition="0"} 1`) {
			return "metric not set"
		}
		return ""
	})
	if !strings.Contains(c.Out.String(), "committed offset is past the log end") {
		t.Fatal("no error logged for a committed offset past the log end")
	}
	c.term(30 * time.Second)
	if req, _ := totalRequests(t, lc.rd, "1h", lc.topic); req != 0 {
		t.Fatalf("%d requests written from a partition whose committed offset is past its end", req)
	}
	if got := servicetest.Committed(t, lc.kc, lc.group, lc.topic, 1)[0]; got != 5000 {
		t.Fatalf("committed offset moved to %d; it must stay for the operator to decide", got)
	}
}
