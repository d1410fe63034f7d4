package partitionlog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/usage-rollup/usage-rollup/internal/testsupport/servicetest"
)

// These tests run against the real broker (scripts/kafka.sh) and use
// franz-go as a real transactional producer: kafka-go cannot produce
// transactionally.

// testBroker is one test's connection to the broker: a kafka-go client for
// the Readers and for admin requests, sharing one transport, so a topic the
// test creates is in the transport's metadata before the first fetch.
type testBroker struct {
	addr   string
	client *kafka.Client
}

func newTestBroker(t *testing.T) *testBroker {
	t.Helper()
	s := servicetest.Need(t)
	transport := &kafka.Transport{ClientID: "partitionlog-test"}
	t.Cleanup(transport.CloseIdleConnections)
	return &testBroker{
		addr:   s.Brokers[0],
		client: &kafka.Client{Addr: kafka.TCP(s.Brokers...), Timeout: 10 * time.Second, Transport: transport},
	}
}

// topic creates a topic named after the test, with the given partitions and
// topic configs (name, value pairs), and deletes it after the test.
func (b *testBroker) topic(t *testing.T, partitions int, configs ...string) string {
	t.Helper()
	name := fmt.Sprintf("partitionlog-%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano())
	servicetest.CreateTopic(t, b.client, name, partitions, configs...)
	return name
}

// producer returns a franz-go producer to topic; transactional when txnID is
// set.
func (b *testBroker) producer(t *testing.T, topic, txnID string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts = append([]kgo.Opt{
		kgo.SeedBrokers(b.addr), kgo.DefaultProduceTopic(topic),
		// A new topic's leader may not be known at the first metadata
		// request; franz-go's default minimum age (5s) would delay the retry.
		kgo.MetadataMinAge(100 * time.Millisecond),
	}, opts...)
	if txnID != "" {
		opts = append(opts, kgo.TransactionalID(txnID))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// produce sends values to partition 0, synchronously.
func produce(t *testing.T, cl *kgo.Client, values ...string) {
	t.Helper()
	rs := make([]*kgo.Record, len(values))
	for i, v := range values {
		rs[i] = &kgo.Record{Value: []byte(v)}
	}
	if err := cl.ProduceSync(t.Context(), rs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// inTxn produces values in one transaction and ends it with commit or abort.
func inTxn(t *testing.T, cl *kgo.Client, end kgo.TransactionEndTry, values ...string) {
	t.Helper()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	produce(t, cl, values...)
	if err := cl.EndTransaction(t.Context(), end); err != nil {
		t.Fatalf("end transaction: %v", err)
	}
}

func values(prefix string, n int) []string {
	vs := make([]string, n)
	for i := range vs {
		vs[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return vs
}

func (b *testBroker) reader(t *testing.T, topic string, partition int, budget *Budget) *Reader {
	t.Helper()
	cfg := DefaultConfig(topic, partition)
	cfg.MaxBytes = 1 << 20
	cfg.MaxWait = 200 * time.Millisecond
	if budget == nil {
		budget = NewBudget(reserveFactor * int64(cfg.MaxBytes))
	}
	r, err := NewReader(b.client, cfg, budget, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// readResult is everything a run of fetches returned.
type readResult struct {
	offsets          []int64
	values           []string
	gaps             []Range
	aborted, control int
	next             int64
}

// readUntil fetches from offset until Next reaches until.
func readUntil(t *testing.T, r *Reader, offset, until int64) readResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	res := readResult{next: offset}
	for res.next < until {
		f, err := r.Fetch(ctx, res.next)
		if err != nil {
			t.Fatalf("fetch at %d: %v", res.next, err)
		}
		for _, rec := range f.Records {
			res.offsets = append(res.offsets, rec.Offset)
			res.values = append(res.values, string(rec.Value))
		}
		res.gaps = append(res.gaps, f.Gaps...)
		res.aborted += f.Aborted
		res.control += f.Control
		res.next = f.Next
		f.Release()
	}
	return res
}

// settledEnd waits until no transaction is open on partition 0 and returns
// its high watermark. The transaction markers are written after
// EndTransaction returns (the coordinator writes them once the outcome is in
// its log), so a marker can land after records produced later by others.
func settledEnd(t *testing.T, b *testBroker, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		hwm := listEnd(ctx, t, b, topic, kafka.ReadUncommitted)
		if lso := listEnd(ctx, t, b, topic, kafka.ReadCommitted); lso == hwm {
			return hwm
		}
		select {
		case <-ctx.Done():
			t.Fatal("a transaction stayed open")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// listEnd returns partition 0's high watermark (ReadUncommitted) or last
// stable offset (ReadCommitted).
func listEnd(ctx context.Context, t *testing.T, b *testBroker, topic string, level kafka.IsolationLevel) int64 {
	t.Helper()
	res, err := b.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
		Topics:         map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(0)}},
		IsolationLevel: level,
	})
	if err != nil {
		t.Fatal(err)
	}
	p := res.Topics[topic][0]
	if p.Error != nil {
		t.Fatal(p.Error)
	}
	return p.LastOffset
}

func TestBrokerReadCommitted(t *testing.T) {
	b := newTestBroker(t)
	topic := b.topic(t, 1)
	plain := b.producer(t, topic, "")
	txn := b.producer(t, topic, topic+"-txn")

	produce(t, plain, values("plain-before", 5)...)
	inTxn(t, txn, kgo.TryAbort, values("aborted", 100)...)
	inTxn(t, txn, kgo.TryCommit, values("committed", 10)...)
	produce(t, plain, values("plain-after", 5)...)

	hwm := settledEnd(t, b, topic)
	got := readUntil(t, b.reader(t, topic, 0, nil), 0, hwm)

	want := slices.Concat(values("plain-before", 5), values("committed", 10), values("plain-after", 5))
	if !slices.Equal(got.values, want) {
		t.Errorf("values %q,\nwant %q", got.values, want)
	}
	if !slices.IsSorted(got.offsets) || got.offsets[0] != 0 {
		t.Errorf("offsets %v: want increasing from 0", got.offsets)
	}
	if got.aborted != 100 || got.control != 2 {
		t.Errorf("aborted %d, control %d; want 100, 2", got.aborted, got.control)
	}
	if got.gaps != nil {
		t.Errorf("gaps %v in a log without holes", got.gaps)
	}
	// Every offset is a record returned, aborted or a marker.
	if n := int64(len(got.values) + got.aborted + got.control); got.next != hwm || n != hwm {
		t.Errorf("next %d, %d offsets accounted for; want both %d", got.next, n, hwm)
	}
}

func TestBrokerOpenTransactionHoldsBackLaterRecords(t *testing.T) {
	b := newTestBroker(t)
	topic := b.topic(t, 1)
	plain := b.producer(t, topic, "")
	txn := b.producer(t, topic, topic+"-txn")
	r := b.reader(t, topic, 0, nil)

	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	produce(t, txn, values("open", 3)...)
	produce(t, plain, values("after", 3)...)

	f, err := r.Fetch(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Records) != 0 || f.Next != 0 || f.LastStableOffset != 0 || f.HighWatermark != 6 {
		t.Errorf("with the transaction open: %d records, next %d, LSO %d, HWM %d; want 0, 0, 0, 6",
			len(f.Records), f.Next, f.LastStableOffset, f.HighWatermark)
	}
	f.Release()

	if err := txn.EndTransaction(t.Context(), kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	got := readUntil(t, r, 0, settledEnd(t, b, topic))
	want := slices.Concat(values("open", 3), values("after", 3))
	if !slices.Equal(got.values, want) || got.control != 1 || got.aborted != 0 || got.gaps != nil {
		t.Errorf("after the commit: values %q, control %d, aborted %d, gaps %v; want %q, 1, 0, none",
			got.values, got.control, got.aborted, got.gaps, want)
	}
}

func TestBrokerDeleteRecords(t *testing.T) {
	b := newTestBroker(t)
	topic := b.topic(t, 1)
	// Lingering puts the 20 records into one batch, so the log start ends
	// up inside it.
	plain := b.producer(t, topic, "", kgo.ProducerLinger(100*time.Millisecond))
	produce(t, plain, values("v", 20)...)
	deleteRecordsBelow(t, plain, topic, 10)

	r := b.reader(t, topic, 0, nil)
	_, err := r.Fetch(t.Context(), 5)
	oor, ok := errors.AsType[*OffsetOutOfRangeError](err)
	if !ok {
		t.Fatalf("fetch below the log start: %v, want *OffsetOutOfRangeError", err)
	}
	if oor.Offset != 5 || oor.LogStart != 10 || oor.LogEnd != 20 {
		t.Errorf("got %+v, want offset 5, log [10, 20)", *oor)
	}

	got := readUntil(t, r, 10, 20)
	if want := values("v", 20)[10:]; !slices.Equal(got.values, want) || got.offsets[0] != 10 || got.gaps != nil {
		t.Errorf("from the log start: values %q from offset %v, gaps %v; want %q from 10, none",
			got.values, got.offsets, got.gaps, want)
	}
}

// deleteRecordsBelow deletes the records of partition 0 below offset.
func deleteRecordsBelow(t *testing.T, cl *kgo.Client, topic string, offset int64) {
	t.Helper()
	var below kadm.Offsets
	below.AddOffset(topic, 0, offset, -1)
	res, err := kadm.NewClient(cl).DeleteRecords(t.Context(), below)
	if err == nil {
		r, ok := res.Lookup(topic, 0)
		if err = r.Err; !ok {
			err = errors.New("no answer for the partition")
		}
	}
	if err != nil {
		t.Fatalf("delete records below %d: %v", offset, err)
	}
}

// TestBrokerRecordTime pins down what Record.Time is: the producer's
// timestamp, also on a LogAppendTime topic, where kafka-go misses the append
// time (it keeps only the batch's base timestamp plus each record's delta,
// while the broker writes the append time into the batch's max timestamp).
// If a kafka-go upgrade fixes that, this test fails and Record.Time's
// documentation must change.
func TestBrokerRecordTime(t *testing.T) {
	b := newTestBroker(t)
	produced := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, typ := range []string{"CreateTime", "LogAppendTime"} {
		t.Run(typ, func(t *testing.T) {
			topic := b.topic(t, 1, "message.timestamp.type", typ)
			cl := b.producer(t, topic, "")
			if err := cl.ProduceSync(t.Context(), &kgo.Record{Value: []byte("x"), Timestamp: produced}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			f, err := b.reader(t, topic, 0, nil).Fetch(t.Context(), 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Release()
			if len(f.Records) != 1 || !f.Records[0].Time.Equal(produced) {
				t.Errorf("records %+v, want one at the produced time %v", f.Records, produced)
			}
		})
	}
}

// TestBrokerBudget: two partitions share a budget of one fetch; the second
// partition's fetch waits until the first one's is released.
func TestBrokerBudget(t *testing.T) {
	b := newTestBroker(t)
	topic := b.topic(t, 2)
	plain := b.producer(t, topic, "", kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := range int32(2) {
		if err := plain.ProduceSync(t.Context(), &kgo.Record{Partition: p, Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	budget := NewBudget(reserveFactor << 20)
	r0, r1 := b.reader(t, topic, 0, budget), b.reader(t, topic, 1, budget)

	f0, err := r0.Fetch(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg   sync.WaitGroup
		f1   *Fetch
		err1 error
	)
	done := make(chan struct{})
	wg.Go(func() {
		defer close(done)
		f1, err1 = r1.Fetch(t.Context(), 0)
	})
	select {
	case <-done:
		t.Fatal("the second fetch did not wait for the budget")
	case <-time.After(500 * time.Millisecond):
	}
	f0.Release()
	wg.Wait()
	if err1 != nil {
		t.Fatal(err1)
	}
	if len(f1.Records) != 1 {
		t.Errorf("%d records, want 1", len(f1.Records))
	}
	f1.Release()
}
