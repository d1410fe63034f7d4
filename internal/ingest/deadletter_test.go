package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/events"
	"github.com/usage-rollup/usage-rollup/internal/partitionlog"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/servicetest"
)

func TestRefusedForGood(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"message too large", fmt.Errorf("%w: record batch too big", kafka.MessageSizeTooLarge), true},
		{"larger than the writer's BatchBytes", kafka.MessageTooLargeError{}, true},
		{"record list too large", kafka.RecordListTooLarge, true},
		{"invalid record", fmt.Errorf("%w: compacted topic needs a key", kafka.InvalidRecord), true},
		{"leader change", kafka.NotLeaderForPartition, false},
		{"timeout", kafka.RequestTimedOut, false},
		{"unknown topic", kafka.UnknownTopicOrPartition, false},
		{"authorization", kafka.TopicAuthorizationFailed, false},
		{"connection cut", io.ErrUnexpectedEOF, false},
		{"shutdown", context.Canceled, false},
	}
	for _, c := range cases {
		if got := refusedForGood(c.err); got != c.want {
			t.Errorf("%s: refusedForGood(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

func TestTruncatedKeepsKeyAndHeaders(t *testing.T) {
	orig := kafka.Message{
		Key:     []byte("k"),
		Value:   bytes.Repeat([]byte("v"), aggregate.MaxRejectedPayload+10),
		Headers: make([]kafka.Header, 1, 8), // spare capacity: truncated must not write into it
	}
	orig.Headers[0] = kafka.Header{Key: "usage-rollup-reason", Value: []byte("oversized")}
	tr := truncated(orig)
	if len(tr.Value) != aggregate.MaxRejectedPayload || string(tr.Key) != "k" {
		t.Errorf("truncated value %d bytes, key %q", len(tr.Value), tr.Key)
	}
	h := headers(tr)
	if h["usage-rollup-reason"] != "oversized" || h[headerTruncated] != "true" ||
		h[headerOriginalSize] != strconv.Itoa(aggregate.MaxRejectedPayload+10) {
		t.Errorf("headers %v", h)
	}
	if len(orig.Headers) != 1 || orig.Headers[:2][1].Key != "" {
		t.Errorf("truncated changed the original's headers: %v", orig.Headers[:2])
	}
	if small := truncated(kafka.Message{Value: []byte("{")}); string(small.Value) != "{" {
		t.Errorf("a short value is kept whole, got %q", small.Value)
	}
}

// TestDeadLettersTheTopicRefuses writes, against the real broker, dead
// letters a dead-letter topic with max.message.bytes = 1 MB cannot take
// unchanged: they end as written (compressed, or one by one), truncated, or
// counted and dropped, never in an endless retry.
func TestDeadLettersTheTopicRefuses(t *testing.T) {
	bs := servicetest.NeedKafka(t)
	base := fmt.Sprintf("consumer-dlq-refuse-%d-%d", time.Now().Unix(), rand.IntN(1e6))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rand.Uint32())
		}
		return b
	}
	type letter struct {
		key, value []byte
		want       string // "whole", "truncated" or "dropped"
	}
	batch := func(n, size int) []letter {
		out := make([]letter, n)
		for i := range out {
			out[i] = letter{[]byte(fmt.Sprintf("k%d", i)), random(size), "whole"}
		}
		return out
	}
	cases := []struct {
		name    string
		configs map[string]string
		letters []letter
	}{
		{"too large, compressible, batch too large together", map[string]string{"max.message.bytes": "1048576"}, append([]letter{
			{[]byte("big"), random(5 << 20), "truncated"},
			{[]byte("zip"), bytes.Repeat([]byte(`{"pad":"xxxxxxxx"}`), 600_000), "whole"}, // 10.8 MB, compresses to KBs
			{nil, []byte("{not json"), "whole"},
		}, batch(12, 200<<10)...)}, // 2.4 MB together: refused as one record batch, each fits alone
		{"compacted topic, no key", map[string]string{"cleanup.policy": "compact"}, []letter{
			{nil, []byte("{not json"), "dropped"},
			{[]byte("keyed"), []byte("{not json"), "whole"},
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dlq := fmt.Sprintf("%s-%d", base, i)
			createTopic(t, bs, dlq, 1, tc.configs)
			w, c := deadLetterWorker(t, bs, base, dlq)
			rej := &events.RejectError{Reason: events.ReasonInvalidJSON, Detail: "test"}
			want := map[int64]letter{}
			for off, l := range tc.letters {
				w.add(int64(off), &partitionlog.Record{Offset: int64(off), Time: time.Now(), Key: l.key, Value: l.value}, rej)
				want[int64(off)] = l
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := w.write(ctx); err != nil {
				t.Fatalf("writeDeadLetters: %v", err)
			}
			counts := map[string]int{}
			for _, l := range tc.letters {
				counts[l.want]++
			}
			got := readAll(t, bs, dlq, 1, counts["whole"]+counts["truncated"])
			for _, m := range got {
				h := headers(m)
				off, _ := strconv.ParseInt(h[headerSourceOffset], 10, 64)
				l, ok := want[off]
				switch {
				case !ok:
					t.Errorf("dead letter for unknown offset %q", h[headerSourceOffset])
				case l.want == "whole" && (!bytes.Equal(m.Value, l.value) || h[headerTruncated] != ""):
					t.Errorf("offset %d: %d bytes, truncated=%q; want the whole %d bytes", off, len(m.Value), h[headerTruncated], len(l.value))
				case l.want == "truncated" && (!bytes.Equal(m.Value, l.value[:aggregate.MaxRejectedPayload]) ||
					h[headerTruncated] != "true" || h[headerOriginalSize] != strconv.Itoa(len(l.value))):
					t.Errorf("offset %d: %d bytes, headers %v; want it truncated", off, len(m.Value), h)
				case l.want == "dropped":
					t.Errorf("offset %d: written, want it dropped", off)
				}
				if !bytes.Equal(m.Key, l.key) || h["usage-rollup-reason"] != "invalid_json" {
					t.Errorf("offset %d: key %q, headers %v", off, m.Key, h)
				}
			}
			for name, got := range map[string]float64{
				"whole":     testutil.ToFloat64(c.metrics.deadLetters) - testutil.ToFloat64(c.metrics.dlTruncated),
				"truncated": testutil.ToFloat64(c.metrics.dlTruncated),
				"dropped":   testutil.ToFloat64(c.metrics.dlDropped),
			} {
				if int(got) != counts[name] {
					t.Errorf("metrics: %v dead letters %s, want %d", got, name, counts[name])
				}
			}
			if n := testutil.ToFloat64(c.metrics.deadLetterErr.WithLabelValues(classPermanent)); int(n) != counts["truncated"]+2*counts["dropped"] {
				t.Errorf("permanent errors = %v, want one per refused message and one per refused truncation", n)
			}
			if len(w.msgs) != 0 || w.nbytes != 0 {
				t.Errorf("queue not reset: %d messages, %d bytes", len(w.msgs), w.nbytes)
			}
		})
	}
}

// TestDeadLettersWaitForTheTopic checks that a transient failure (the topic
// does not exist yet) is retried until it heals: nothing is dropped.
func TestDeadLettersWaitForTheTopic(t *testing.T) {
	bs := servicetest.NeedKafka(t)
	dlq := fmt.Sprintf("consumer-dlq-late-%d-%d", time.Now().Unix(), rand.IntN(1e6))
	w, c := deadLetterWorker(t, bs, dlq+"-src", dlq)
	w.add(7, &partitionlog.Record{Offset: 7, Time: time.Now(), Key: []byte("k"), Value: []byte("{")}, &events.RejectError{Reason: events.ReasonInvalidJSON})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.write(ctx) }()
	time.Sleep(1500 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("writeDeadLetters returned %v before the topic existed", err)
	default:
	}
	createTopic(t, bs, dlq, 1, nil)
	if err := <-done; err != nil {
		t.Fatalf("writeDeadLetters: %v", err)
	}
	if n := testutil.ToFloat64(c.metrics.deadLetterErr.WithLabelValues(classTransient)); n == 0 {
		t.Error("no transient error counted while the topic was missing")
	}
	if got := readAll(t, bs, dlq, 1, 1); len(got) != 1 || testutil.ToFloat64(c.metrics.dlDropped) != 0 {
		t.Errorf("%d dead letters, %v dropped; want 1 written", len(got), testutil.ToFloat64(c.metrics.dlDropped))
	}
}

// deadLetterWorker returns the dead-letter queue of partition 0 of topic,
// writing to dlq, without joining a group.
func deadLetterWorker(t *testing.T, bs []string, topic, dlq string) (*deadLetters, *Consumer) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Brokers, cfg.Topic, cfg.GroupID, cfg.DeadLetterTopic = bs, topic, topic, dlq
	cfg.RetryBackoffMax = 500 * time.Millisecond
	c, err := New(cfg, aggregate.DefaultConfig(), events.DefaultConfig(), newMemTable(), zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	w := c.newDeadLetterWriter()
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("close dead-letter writer: %v", err)
		}
		c.transport.CloseIdleConnections()
	})
	return &deadLetters{writer: w, topic: topic, partition: 0, log: zerolog.Nop(),
		met: c.metrics, backoffMax: cfg.RetryBackoffMax}, c
}

// createTopic creates topic with topic-level configs.
func createTopic(t *testing.T, bs []string, topic string, partitions int, configs map[string]string) {
	t.Helper()
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(bs...), Timeout: 10 * time.Second, Transport: transport}
	tc := kafka.TopicConfig{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}
	for k, v := range configs {
		tc.ConfigEntries = append(tc.ConfigEntries, kafka.ConfigEntry{ConfigName: k, ConfigValue: v})
	}
	res, err := client.CreateTopics(context.Background(), &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{tc}})
	if err == nil {
		err = res.Errors[topic]
	}
	if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

func headers(m kafka.Message) map[string]string {
	h := map[string]string{}
	for _, x := range m.Headers {
		h[x.Key] = string(x.Value)
	}
	return h
}
