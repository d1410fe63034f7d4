package kafkaoffsets

import (
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/usage-rollup/usage-rollup/internal/testsupport/servicetest"
)

// TestListAgainstTheBroker checks both bounds on a real broker: partition 0
// holds 20 records of which DeleteRecords removed the first 5, partition 1
// is empty, and a partition the topic does not have fails alone.
func TestListAgainstTheBroker(t *testing.T) {
	brokers := servicetest.NeedKafka(t)
	transport := &kafka.Transport{ClientID: "kafkaoffsets-test"}
	t.Cleanup(transport.CloseIdleConnections)
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: transport}
	topic := fmt.Sprintf("kafkaoffsets-%d", time.Now().UnixNano())
	servicetest.CreateTopic(t, client, topic, 2)

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		// A new topic's leader may not be known at the first metadata
		// request; franz-go's default minimum age (5s) would delay the retry.
		kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	records := make([]*kgo.Record, 20)
	for i := range records {
		records[i] = &kgo.Record{Partition: 0, Value: []byte("x")}
	}
	if err := cl.ProduceSync(t.Context(), records...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	var below kadm.Offsets
	below.AddOffset(topic, 0, 5, -1)
	deleted, err := kadm.NewClient(cl).DeleteRecords(t.Context(), below)
	if err == nil {
		err = deleted.Error()
	}
	if err != nil {
		t.Fatalf("delete records below 5: %v", err)
	}

	got, err := List(t.Context(), client, topic, Partitions(2)...)
	if want := map[int]Bounds{0: {First: 5, End: 20}, 1: {First: 0, End: 0}}; err != nil || !maps.Equal(got, want) {
		t.Errorf("List = %v, %v; want %v, nil", got, err, want)
	}
	ends, err := Ends(t.Context(), client, topic, 1, 0)
	if want := map[int]int64{0: 20, 1: 0}; err != nil || !maps.Equal(ends, want) {
		t.Errorf("Ends = %v, %v; want %v, nil", ends, err, want)
	}

	got, err = List(t.Context(), client, topic, 0, 7)
	var pe *PartitionError
	if !errors.As(err, &pe) || pe.Partition != 7 || pe.Topic != topic {
		t.Errorf("List with partition 7 of a 2-partition topic: error %v, want a *PartitionError for partition 7", err)
	}
	if want := map[int]Bounds{0: {First: 5, End: 20}}; !maps.Equal(got, want) {
		t.Errorf("List with partition 7 of a 2-partition topic = %v, want the other partition: %v", got, want)
	}
}

func TestNoPartitionsAsksNothing(t *testing.T) {
	// A client with no address would fail any request.
	got, err := List(t.Context(), &kafka.Client{}, "t")
	if err != nil || len(got) != 0 {
		t.Errorf("List() = %v, %v; want empty, nil", got, err)
	}
}
