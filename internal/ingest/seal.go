package ingest

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// A seal record ends the current segment of its partition (see
// aggregate.ChunkState.Seal). A partition's log is cut into chunks of
// CHUNK_SIZE offsets, and the pieces of a chunk are complete, and can be
// compacted, only once a later chunk or segment began; a partition that goes
// quiet would keep its newest chunk open, and every group it touched
// uncompacted, until CHUNK_SIZE more records arrive. So the consumer that
// owns an idle partition writes a seal record into it. Being a record of the
// log, it cuts at the same offset for every reader: replays, restarts and a
// previous owner still running all cut there, which a cut decided from the
// wall clock could not promise.
//
// The record has this key and an empty (not null) value: no event is empty,
// and a null value would be a tombstone on a compacted topic.
const sealKey = "\x00usage-rollup:seal"

// sealHeader names the record for people reading the topic with other tools.
const sealHeader = "usage-rollup-seal"

// IsSeal reports whether a record with this key and value is a seal record.
// The value's length is what counts: readers may hand an empty value over
// as nil.
func IsSeal(key, value []byte) bool {
	return len(value) == 0 && string(key) == sealKey // compared in place, no allocation
}

// writeSeal appends one seal record to the partition.
func writeSeal(ctx context.Context, c *kafka.Client, topic string, partition int) error {
	res, err := c.Produce(ctx, &kafka.ProduceRequest{
		Topic:        topic,
		Partition:    partition,
		RequiredAcks: kafka.RequireAll,
		Records: kafka.NewRecordReader(kafka.Record{
			Time:    time.Now(),
			Key:     kafka.NewBytes([]byte(sealKey)),
			Value:   kafka.NewBytes([]byte{}),
			Headers: []kafka.Header{{Key: sealHeader, Value: []byte("1")}},
		}),
	})
	if err == nil && res.Error != nil {
		err = res.Error
	}
	if err != nil {
		return fmt.Errorf("write seal record to %s/%d: %w", topic, partition, err)
	}
	return nil
}
