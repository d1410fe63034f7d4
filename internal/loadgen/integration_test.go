package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/usage-rollup/usage-rollup/internal/kafkaoffsets"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/servicetest"
)

// TestProduceKafka writes a stream to a fresh 4-partition topic and reads it
// back: every message arrives, each key stays in one partition, and each
// partition holds its messages in generation order.
func TestProduceKafka(t *testing.T) {
	brokers := servicetest.NeedKafka(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: transport}

	topic := fmt.Sprintf("loadgen-test-%d", time.Now().UnixNano())
	const partitions = 4
	created, n, err := EnsureTopic(ctx, brokers, topic, partitions)
	if err != nil || !created || n != partitions {
		t.Fatalf("EnsureTopic = %v, %d, %v; want created with %d partitions", created, n, err, partitions)
	}
	t.Cleanup(func() {
		// t.Context is already canceled during cleanup.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}}); err != nil {
			t.Logf("delete topic %s: %v", topic, err)
		}
		transport.CloseIdleConnections()
	})
	if created, n, err := EnsureTopic(ctx, brokers, topic, 8); err != nil || created || n != partitions {
		t.Fatalf("EnsureTopic on existing topic = %v, %d, %v; want not created, %d partitions", created, n, err, partitions)
	}

	cfg := testConfig(99, 500)
	cfg.Start = time.Now().Add(-cfg.Span())
	exp, err := Produce(ctx, brokers, topic, cfg)
	if err != nil {
		t.Fatalf("Produce: %v", err)
	}
	want, _ := generate(t, cfg)

	got := make([][]message, partitions)
	total := 0
	for p := range partitions {
		got[p] = readPartition(ctx, t, client, brokers, topic, p)
		total += len(got[p])
	}
	if total != exp.Sent || total != cfg.Count {
		t.Fatalf("read %d messages, produced %d (Count %d)", total, exp.Sent, cfg.Count)
	}

	partitionOf := map[string]int{}
	for p, msgs := range got {
		for _, m := range msgs {
			if q, ok := partitionOf[string(m.key)]; ok && q != p {
				t.Fatalf("key %s in partitions %d and %d", m.key, q, p)
			}
			partitionOf[string(m.key)] = p
		}
	}
	next := make([]int, partitions)
	for i, w := range want {
		p := partitionOf[string(w.key)]
		g := got[p][next[p]]
		if !bytes.Equal(g.key, w.key) || !bytes.Equal(g.value, w.value) {
			t.Fatalf("generated message %d: partition %d offset %d holds key %s, want %s", i, p, next[p], g.key, w.key)
		}
		next[p]++
	}
}

// readPartition reads partition p from the beginning to its end offset.
func readPartition(ctx context.Context, t *testing.T, client *kafka.Client, brokers []string, topic string, p int) []message {
	t.Helper()
	ends, err := kafkaoffsets.Ends(ctx, client, topic, p)
	if err != nil {
		t.Fatal(err)
	}
	end := ends[p]
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: brokers, Topic: topic, Partition: p,
		MaxWait: 100 * time.Millisecond,
	})
	defer r.Close()
	var msgs []message
	for int64(len(msgs)) < end {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("partition %d: read %d of %d messages: %v", p, len(msgs), end, err)
		}
		msgs = append(msgs, message{m.Key, m.Value})
	}
	return msgs
}
