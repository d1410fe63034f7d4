// Package kafkaoffsets asks a Kafka broker where partitions' logs start and
// end: the one place that builds ListOffsets requests and reads their
// answers, for the consumer, its reconcile command, the demo and the tests.
package kafkaoffsets

import (
	"context"
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"
)

// Bounds are a partition's log bounds: First is the first retained offset
// (the log start), End the offset the next record will get (the log end, or
// high watermark). The log holds [First, End).
type Bounds struct {
	First, End int64
}

// PartitionError is the error the broker answered for one partition of a
// request; the other partitions' bounds are still returned.
type PartitionError struct {
	Topic     string
	Partition int
	Err       error
}

func (e *PartitionError) Error() string {
	return fmt.Sprintf("list offsets of %s[%d]: %v", e.Topic, e.Partition, e.Err)
}

func (e *PartitionError) Unwrap() error { return e.Err }

// List returns the log bounds of the given partitions of topic, in one
// request. When the request fails it returns nil and the error. Otherwise
// the map holds every partition the broker answered without error, and the
// error joins a *PartitionError for each partition that failed or was
// missing from the answer, so a caller that can use a partial answer does.
func List(ctx context.Context, client *kafka.Client, topic string, partitions ...int) (map[int]Bounds, error) {
	return list(ctx, client, topic, true, partitions)
}

// Ends is List without the log starts, for callers that need only the log
// ends (lag, end of the stream): it asks the broker half as many questions.
func Ends(ctx context.Context, client *kafka.Client, topic string, partitions ...int) (map[int]int64, error) {
	bounds, err := list(ctx, client, topic, false, partitions)
	if bounds == nil {
		return nil, err
	}
	ends := make(map[int]int64, len(bounds))
	for p, b := range bounds {
		ends[p] = b.End
	}
	return ends, err
}

// Partitions returns the ids 0..n-1 of a topic with n partitions.
func Partitions(n int) []int {
	ps := make([]int, n)
	for i := range ps {
		ps[i] = i
	}
	return ps
}

// list asks for the log end of every partition, and its start when first is
// set. Bounds.First is -1 when it was not asked for.
func list(ctx context.Context, client *kafka.Client, topic string, first bool, partitions []int) (map[int]Bounds, error) {
	if len(partitions) == 0 {
		return map[int]Bounds{}, nil
	}
	reqs := make([]kafka.OffsetRequest, 0, 2*len(partitions))
	for _, p := range partitions {
		if first {
			reqs = append(reqs, kafka.FirstOffsetOf(p))
		}
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	res, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	answered := make(map[int]kafka.PartitionOffsets, len(partitions))
	for _, po := range res.Topics[topic] {
		answered[po.Partition] = po
	}
	out := make(map[int]Bounds, len(partitions))
	var errs []error
	for _, p := range partitions {
		po, ok := answered[p]
		switch {
		case !ok:
			errs = append(errs, &PartitionError{Topic: topic, Partition: p, Err: errors.New("missing from the answer")})
		case po.Error != nil:
			errs = append(errs, &PartitionError{Topic: topic, Partition: p, Err: po.Error})
		default:
			b := Bounds{First: -1, End: po.LastOffset}
			if first {
				b.First = po.FirstOffset
			}
			out[p] = b
		}
	}
	return out, errors.Join(errs...)
}
