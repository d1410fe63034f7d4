//go:build faults

package faults

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/usage-rollup/usage-rollup/internal/kafkaoffsets"
)

// admin wraps the test's own Kafka client; it always uses the direct
// listener, so a proxy fault between a consumer and the broker never blinds
// the test.
type admin struct {
	c       *kafka.Client
	brokers []string
}

func newAdmin(brokers []string) *admin {
	return &admin{
		c:       &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 5 * time.Second, Transport: &kafka.Transport{ClientID: "usage-rollup-faults"}},
		brokers: brokers,
	}
}

func (a *admin) close() { a.c.Transport.(*kafka.Transport).CloseIdleConnections() }

// createTopic creates topic with the given partitions and topic configs and
// waits until every partition has a leader.
func (a *admin) createTopic(ctx context.Context, topic string, partitions int, configs map[string]string) error {
	tc := kafka.TopicConfig{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}
	for k, v := range configs {
		tc.ConfigEntries = append(tc.ConfigEntries, kafka.ConfigEntry{ConfigName: k, ConfigValue: v})
	}
	res, err := a.c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{tc}})
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	if err := res.Errors[topic]; err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return a.waitLeaders(ctx, topic, partitions)
}

func (a *admin) waitLeaders(ctx context.Context, topic string, partitions int) error {
	for {
		md, err := a.c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err == nil {
			for _, t := range md.Topics {
				if t.Name != topic || t.Error != nil || len(t.Partitions) != partitions {
					continue
				}
				ready := true
				for _, p := range t.Partitions {
					ready = ready && p.Error == nil && p.Leader.Host != ""
				}
				if ready {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for leaders of %s: %w (last metadata error: %v)", topic, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// addPartitions raises the topic's partition count to n.
func (a *admin) addPartitions(ctx context.Context, topic string, n int) error {
	res, err := a.c.CreatePartitions(ctx, &kafka.CreatePartitionsRequest{
		Topics: []kafka.TopicPartitionsConfig{{Name: topic, Count: int32(n)}},
	})
	if err == nil {
		err = res.Errors[topic]
	}
	if err != nil {
		return fmt.Errorf("create partitions of %s: %w", topic, err)
	}
	return a.waitLeaders(ctx, topic, n)
}

// endOffsets returns the high watermark of every partition.
func (a *admin) endOffsets(ctx context.Context, topic string, partitions int) (map[int]int64, error) {
	return kafkaoffsets.Ends(ctx, a.c, topic, kafkaoffsets.Partitions(partitions)...)
}

// committed returns the group's committed offset per partition (-1 if none).
func (a *admin) committed(ctx context.Context, group, topic string, partitions int) (map[int]int64, error) {
	ps := make([]int, partitions)
	for p := range partitions {
		ps[p] = p
	}
	res, err := a.c.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ps}})
	if err != nil {
		return nil, fmt.Errorf("fetch committed offsets: %w", err)
	}
	if res.Error != nil {
		return nil, fmt.Errorf("fetch committed offsets: %w", res.Error)
	}
	out := map[int]int64{}
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("fetch committed offset of partition %d: %w", p.Partition, p.Error)
		}
		out[p.Partition] = p.CommittedOffset
	}
	return out, nil
}

// resetGroup commits offset 0 for every partition with generation -1, as
// `kafka-consumer-groups.sh --reset-offsets --to-earliest` does. The group
// must be empty, or the broker refuses.
func (a *admin) resetGroup(ctx context.Context, group, topic string, partitions int) error {
	commits := make([]kafka.OffsetCommit, partitions)
	for p := range partitions {
		commits[p] = kafka.OffsetCommit{Partition: p, Offset: 0}
	}
	res, err := a.c.OffsetCommit(ctx, &kafka.OffsetCommitRequest{
		GroupID: group, GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{topic: commits},
	})
	if err != nil {
		return fmt.Errorf("reset group offsets: %w", err)
	}
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			return fmt.Errorf("reset offset of partition %d: %w", p.Partition, p.Error)
		}
	}
	return nil
}

// groupMembers returns how many members the group has and its state.
func (a *admin) groupMembers(ctx context.Context, group string) (int, string, error) {
	res, err := a.c.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		return 0, "", err
	}
	for _, g := range res.Groups {
		if g.GroupID == group {
			return len(g.Members), g.GroupState, g.Error
		}
	}
	return 0, "", errors.New("group missing from DescribeGroups response")
}

// record is one message of the log as the test reads it back.
type record struct {
	offset  int64
	key     []byte
	value   []byte
	time    time.Time
	headers []kafka.Header
}

// readLog reads every partition of topic from offset 0 up to ends, one
// non-group reader per partition.
func (a *admin) readLog(ctx context.Context, topic string, ends map[int]int64) (map[int][]record, error) {
	out := map[int][]record{}
	for p, end := range ends {
		if end == 0 {
			out[p] = nil
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: a.brokers, Topic: topic, Partition: p,
			MinBytes: 1, MaxBytes: 32 << 20, MaxWait: 500 * time.Millisecond,
		})
		recs := make([]record, 0, end)
		var err error
		for int64(len(recs)) < end {
			var m kafka.Message
			m, err = r.ReadMessage(ctx)
			if err != nil {
				break
			}
			if m.Offset != int64(len(recs)) {
				err = fmt.Errorf("partition %d: read offset %d, want %d (offsets are not contiguous)", p, m.Offset, len(recs))
				break
			}
			recs = append(recs, record{offset: m.Offset, key: m.Key, value: m.Value, time: m.Time, headers: m.Headers})
		}
		if cerr := r.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("read back %s/%d: %w", topic, p, err)
		}
		out[p] = recs
	}
	return out, nil
}
