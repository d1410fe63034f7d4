package consumer

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/usage-rollup/usage-rollup/internal/events"
)

// maxDeadLetterBytes bounds the rejected messages a partition holds for the
// dead-letter topic between flushes; a burst of large poison messages makes
// it flush early instead of growing.
const maxDeadLetterBytes = 16 << 20

// deadLetter queues a rejected message for the dead-letter topic: the
// original key and value unchanged, and headers saying why and from where.
func (w *partitionWorker) deadLetter(m *kafka.Message, rej *events.RejectError) {
	if w.c.deadLetters == nil {
		return
	}
	w.deadLetters = append(w.deadLetters, kafka.Message{
		Key:   m.Key,
		Value: m.Value, // kafka-go hands each message its own buffers; no copy needed
		Headers: []kafka.Header{
			{Key: "usage-rollup-reason", Value: []byte(rej.Reason)},
			{Key: "usage-rollup-field", Value: []byte(rej.Field)},
			{Key: "usage-rollup-detail", Value: []byte(rej.Detail)},
			{Key: "usage-rollup-source-topic", Value: []byte(m.Topic)},
			{Key: "usage-rollup-source-partition", Value: strconv.AppendInt(nil, int64(m.Partition), 10)},
			{Key: "usage-rollup-source-offset", Value: strconv.AppendInt(nil, m.Offset, 10)},
			{Key: "usage-rollup-source-timestamp", Value: []byte(m.Time.UTC().Format(time.RFC3339Nano))},
			{Key: "usage-rollup-rejected-at", Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))},
		},
	})
	w.deadLetterBytes += len(m.Value)
}

// writeDeadLetters writes the queued rejected messages, retrying until they
// are acknowledged or ctx ends. It runs before the ClickHouse write, so an
// offset is never committed before its dead letter is durable. A replay
// writes them again: the dead-letter topic is at-least-once, and the
// source-offset headers identify repeats.
func (w *partitionWorker) writeDeadLetters(ctx context.Context) error {
	if len(w.deadLetters) == 0 {
		return nil
	}
	for attempt := 0; ; attempt++ {
		err := w.c.deadLetters.WriteMessages(ctx, w.deadLetters...)
		if err == nil {
			break
		}
		w.c.metrics.deadLetterErr.Inc()
		d := backoff(attempt, w.c.cfg.RetryBackoffMax)
		w.log.Warn().Err(err).Int("messages", len(w.deadLetters)).Dur("retry_in", d).Msg("write dead letters; retrying")
		if !sleep(ctx, d) {
			return fmt.Errorf("write %d dead letters: %w", len(w.deadLetters), ctx.Err())
		}
	}
	w.c.metrics.deadLetters.Add(float64(len(w.deadLetters)))
	clear(w.deadLetters) // drop references to the message buffers
	w.deadLetters, w.deadLetterBytes = w.deadLetters[:0], 0
	return nil
}
