package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/backoff"
	"github.com/usage-rollup/usage-rollup/internal/events"
	"github.com/usage-rollup/usage-rollup/internal/partitionlog"
)

// Headers of a dead letter written truncated because the dead-letter topic
// refused the whole message (docs/operations.md, "Dead letters").
const (
	headerTruncated    = "usage-rollup-truncated"     // "true"
	headerOriginalSize = "usage-rollup-original-size" // bytes of the original value
	headerSourceOffset = "usage-rollup-source-offset"
)

// Values of the class label of usage_rollup_dead_letter_errors_total.
const (
	classTransient = "transient" // retried with backoff; nothing is lost
	classPermanent = "permanent" // refused for good: written truncated, or dropped
)

// deadLetters is one partition's queue of rejected records for the
// dead-letter topic and the code that writes them. It is not safe for
// concurrent use: the partition's goroutine owns it.
type deadLetters struct {
	writer     deadLetterWriter
	topic      string
	partition  int
	log        zerolog.Logger
	met        *metrics
	backoffMax time.Duration
	// msgs are held until the next flush writes them, before the ClickHouse
	// write and the commit.
	msgs   []kafka.Message
	nbytes int
}

// bytes is the size of the values queued.
func (d *deadLetters) bytes() int { return d.nbytes }

// add queues a rejected record for the dead-letter topic: the original key
// and value, and headers saying why and from where. Key and value are
// copied, since the fetch loop reuses its buffers.
func (d *deadLetters) add(offset int64, rec *partitionlog.Record, rej *events.RejectError) {
	key, value, recordTime := rec.Key, rec.Value, rec.Time
	d.msgs = append(d.msgs, kafka.Message{
		Key:   bytes.Clone(key),
		Value: bytes.Clone(value),
		Headers: []kafka.Header{
			{Key: "usage-rollup-reason", Value: []byte(rej.Reason)},
			{Key: "usage-rollup-field", Value: []byte(rej.Field)},
			{Key: "usage-rollup-detail", Value: []byte(rej.Detail)},
			{Key: "usage-rollup-source-topic", Value: []byte(d.topic)},
			{Key: "usage-rollup-source-partition", Value: strconv.AppendInt(nil, int64(d.partition), 10)},
			{Key: headerSourceOffset, Value: strconv.AppendInt(nil, offset, 10)},
			{Key: "usage-rollup-source-timestamp", Value: []byte(recordTime.UTC().Format(time.RFC3339Nano))},
			{Key: "usage-rollup-rejected-at", Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))},
		},
	})
	d.nbytes += len(value)
}

// writeDeadLetters writes the queued rejected messages. It runs before the
// ClickHouse write, so an offset is never committed before its dead letter is
// durable. Transient failures (broker down, leader change, timeout) are
// retried until they succeed or ctx ends: nothing is lost while the broker is
// merely unavailable. A message the dead-letter topic refuses for good (too
// large for its max.message.bytes, invalid) ends in salvage, never in an
// endless retry. A replay writes dead letters again: the topic is
// at-least-once, and the source-offset headers identify repeats.
func (d *deadLetters) write(ctx context.Context) error {
	if len(d.msgs) == 0 {
		return nil
	}
	refused, err := d.deliver(ctx, d.msgs)
	if err != nil {
		return fmt.Errorf("write %d dead letters: %w", len(d.msgs), err)
	}
	written := len(d.msgs) - len(refused)
	for _, r := range refused {
		ok, err := d.salvage(ctx, r)
		if err != nil {
			return fmt.Errorf("write refused dead letter: %w", err)
		}
		if ok {
			written++
		}
	}
	d.met.deadLetters.Add(float64(written))
	clear(d.msgs) // drop references to the message buffers
	d.msgs, d.nbytes = d.msgs[:0], 0
	return nil
}

// refusal is a dead letter refused for good: by the broker, or by kafka-go
// before sending because it exceeds the writer's BatchBytes.
type refusal struct {
	msg kafka.Message
	err error
	// shared: refused in a write with other messages. The broker checks
	// max.message.bytes per record batch, so the batch, not this message,
	// may have been too large.
	shared bool
}

// deliver writes msgs, retrying those that failed transiently with capped
// jittered backoff until they are acknowledged or ctx ends. It returns the
// ones refused for good.
func (d *deadLetters) deliver(ctx context.Context, msgs []kafka.Message) ([]refusal, error) {
	var refused []refusal
	for attempt := 0; len(msgs) > 0; {
		err := d.writer.WriteMessages(ctx, msgs...)
		if err == nil {
			break
		}
		var tooLarge kafka.MessageTooLargeError
		if errors.As(err, &tooLarge) {
			// kafka-go checks every message against BatchBytes before it
			// sends any; it names the first one too large and returns the
			// rest, which are retried at once.
			refused = append(refused, refusal{msg: tooLarge.Message,
				err: fmt.Errorf("%d bytes, above the writer's BatchBytes: %w", len(tooLarge.Message.Value), err)})
			msgs = tooLarge.Remaining
			continue
		}
		var retry []kafka.Message
		var werrs kafka.WriteErrors
		shared := false
		if errors.As(err, &werrs) && len(werrs) == len(msgs) {
			for i, e := range werrs {
				switch {
				case e == nil:
				case refusedForGood(e):
					shared = len(msgs) > 1
					refused = append(refused, refusal{msg: msgs[i], err: e, shared: shared})
				default:
					retry = append(retry, msgs[i])
				}
			}
		} else {
			// The call failed as a whole, e.g. no metadata for the topic.
			retry = msgs
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if len(retry) > 0 || shared {
			// Retried: with backoff, or (a refused batch) message by message.
			d.met.deadLetterErr.WithLabelValues(classTransient).Inc()
		}
		if shared {
			d.log.Debug().Int("messages", len(msgs)).Int("refused", len(refused)).
				Msg("dead-letter topic refused a batch; retrying its messages one by one")
		}
		if len(retry) == 0 {
			break
		}
		delay := backoff.Delay(attempt, d.backoffMax)
		level := zerolog.WarnLevel
		if needsOperator(err) {
			level = zerolog.ErrorLevel
		}
		d.log.WithLevel(level).Err(err).Int("messages", len(retry)).Dur("retry_in", delay).Msg("write dead letters; retrying")
		if !backoff.Sleep(ctx, delay) {
			return nil, ctx.Err()
		}
		msgs = retry
		attempt++
	}
	return refused, nil
}

// salvage ends the path of a refused dead letter and reports whether one was
// written. Refused in a shared write, the message is first retried alone.
// Refused alone, a truncated dead letter takes its place: the first
// aggregate.MaxRejectedPayload bytes of the value (as much as usage_rejected
// keeps), the same key and headers, and headers saying it was truncated and
// the original size. Refused even then, it is counted, logged and dropped;
// usage_rejected keeps its row.
func (d *deadLetters) salvage(ctx context.Context, r refusal) (bool, error) {
	if r.shared {
		again, err := d.deliver(ctx, []kafka.Message{r.msg})
		if err != nil {
			return false, err
		}
		if len(again) == 0 {
			return true, nil
		}
		r = again[0]
	}
	met := d.met
	met.deadLetterErr.WithLabelValues(classPermanent).Inc()
	offset := sourceOffset(&r.msg)
	again, err := d.deliver(ctx, []kafka.Message{truncated(r.msg)})
	if err != nil {
		return false, err
	}
	if len(again) == 0 {
		met.dlTruncated.Inc()
		d.log.Warn().Err(r.err).Str("topic", d.topic).Int64("offset", offset).Int("bytes", len(r.msg.Value)).
			Int("written_bytes", min(len(r.msg.Value), aggregate.MaxRejectedPayload)).
			Msg("dead-letter topic refused the message; wrote it truncated")
		return true, nil
	}
	met.deadLetterErr.WithLabelValues(classPermanent).Inc()
	met.dlDropped.Inc()
	d.log.Error().Err(again[0].err).AnErr("first_error", r.err).Str("topic", d.topic).Int64("offset", offset).
		Int("bytes", len(r.msg.Value)).
		Msg("dead-letter topic refused the message, even truncated; no dead letter written (usage_rejected keeps its row)")
	return false, nil
}

// truncated is the dead letter written in place of m when the topic refuses m.
func truncated(m kafka.Message) kafka.Message {
	h := slices.Clip(m.Headers) // never append into m's backing array
	h = append(h,
		kafka.Header{Key: headerTruncated, Value: []byte("true")},
		kafka.Header{Key: headerOriginalSize, Value: strconv.AppendInt(nil, int64(len(m.Value)), 10)},
	)
	return kafka.Message{Key: m.Key, Value: m.Value[:min(len(m.Value), aggregate.MaxRejectedPayload)], Headers: h}
}

// refusedForGood reports whether the dead-letter topic refused a message
// itself, so that retrying it unchanged cannot succeed: too large for the
// topic's max.message.bytes (possibly only together with others: see
// refusal.shared), larger than a segment, or invalid for the topic (e.g. no
// key on a compacted topic).
func refusedForGood(err error) bool {
	return errors.Is(err, kafka.MessageSizeTooLarge) ||
		errors.Is(err, kafka.RecordListTooLarge) ||
		errors.Is(err, kafka.InvalidRecord)
}

// needsOperator reports whether a retried failure will not heal by itself,
// e.g. the topic's authorization: it is logged at error level.
func needsOperator(err error) bool {
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) {
		return slices.ContainsFunc(werrs, func(e error) bool { return e != nil && needsOperator(e) })
	}
	var ke kafka.Error
	return errors.As(err, &ke) && !ke.Temporary()
}

// sourceOffset reads the source offset back from a dead letter's headers.
func sourceOffset(m *kafka.Message) int64 {
	for _, h := range m.Headers {
		if h.Key == headerSourceOffset {
			if n, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil {
				return n
			}
		}
	}
	return -1
}
