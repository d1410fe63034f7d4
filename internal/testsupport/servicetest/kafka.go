package servicetest

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// CreateTopic creates topic name with one replica, the given partitions and
// topic configs (name, value pairs) through client, and deletes it when the
// test ends.
func CreateTopic(t testing.TB, client *kafka.Client, name string, partitions int, configs ...string) {
	t.Helper()
	tc := kafka.TopicConfig{Topic: name, NumPartitions: partitions, ReplicationFactor: 1}
	for i := 0; i+1 < len(configs); i += 2 {
		tc.ConfigEntries = append(tc.ConfigEntries, kafka.ConfigEntry{ConfigName: configs[i], ConfigValue: configs[i+1]})
	}
	res, err := client.CreateTopics(t.Context(), &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{tc}})
	if err == nil {
		err = res.Errors[name]
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	t.Cleanup(func() {
		// The test's context is done by now.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{name}}); err != nil {
			t.Logf("delete topic %s: %v", name, err)
		}
	})
}

// Committed returns group's committed offset per partition of topic (-1
// where it has none), failing the test if the broker cannot be asked. Errors
// the broker reports per group or partition are not checked: callers poll
// until the offsets they wait for show up.
func Committed(t testing.TB, c *kafka.Client, group, topic string, partitions int) map[int]int64 {
	t.Helper()
	ps := make([]int, partitions)
	for p := range ps {
		ps[p] = p
	}
	res, err := c.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ps}})
	if err != nil {
		t.Fatalf("fetch committed offsets: %v", err)
	}
	out := map[int]int64{}
	for _, p := range res.Topics[topic] {
		out[p.Partition] = p.CommittedOffset
	}
	return out
}
