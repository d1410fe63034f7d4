package partitionlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
)

// errOutOfRangeRaced is an OFFSET_OUT_OF_RANGE that the listed offsets do not
// confirm: the log moved between the two requests (a leader change, new
// data), so the fetch is simply retried.
var errOutOfRangeRaced = errors.New("offset out of range, but the listed log offsets contain it")

// retriable reports whether a failed fetch is worth retrying. unknownSince
// tracks since when the topic has been unknown, which is retried for
// unknownTopicGrace only.
func (r *Reader) retriable(err error, unknownSince *time.Time) bool {
	switch {
	case errors.Is(err, kafka.UnknownTopicOrPartition),
		// kafka-go's routing: the transport's cached metadata does not list
		// the topic or partition (yet).
		errors.Is(err, protocol.ErrNoTopic),
		errors.Is(err, protocol.ErrNoPartition):
		if unknownSince.IsZero() {
			*unknownSince = time.Now()
		}
		return time.Since(*unknownSince) < r.unknownTopicGrace
	case errors.Is(err, errOutOfRangeRaced),
		// kafka-go's routing: the cached metadata names no live leader.
		errors.Is(err, protocol.ErrNoLeader),
		// Our per-request deadline; the caller's ctx is checked before.
		errors.Is(err, context.DeadlineExceeded):
		return true
	}
	if code, ok := errors.AsType[kafka.Error](err); ok {
		return retriableCode(code)
	}
	return isNetworkError(err)
}

// retriableCode reports whether a fetch that failed with a broker error code
// may succeed later without the caller doing anything: the leadership or the
// replica state is moving. Codes kafka-go calls temporary but that retrying
// a fetch cannot fix, such as CORRUPT_MESSAGE from a damaged log, are not.
func retriableCode(code kafka.Error) bool {
	switch code {
	case kafka.LeaderNotAvailable,
		kafka.NotLeaderForPartition,
		kafka.RequestTimedOut,
		kafka.BrokerNotAvailable,
		kafka.ReplicaNotAvailable,
		kafka.NetworkException,
		// The replica's log directory failed; the leadership moves.
		kafka.KafkaStorageError,
		kafka.FencedLeaderEpoch,
		kafka.UnknownLeaderEpoch,
		// A new leader has not caught up its high watermark yet.
		kafka.OffsetNotAvailable:
		return true
	}
	return false
}

// isNetworkError reports whether err is a failed or broken connection, which
// the transport replaces on the next request.
func isNetworkError(err error) bool {
	if _, ok := errors.AsType[net.Error](err); ok {
		return true
	}
	return errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}

// outOfRange lists the partition's log start and end after the broker
// answered OFFSET_OUT_OF_RANGE for offset, and returns the
// *OffsetOutOfRangeError, or errOutOfRangeRaced when offset lies in the log
// after all.
func (r *Reader) outOfRange(ctx context.Context, offset int64) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	res, err := r.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
		Topics: map[string][]kafka.OffsetRequest{
			r.cfg.Topic: {kafka.FirstOffsetOf(r.cfg.Partition), kafka.LastOffsetOf(r.cfg.Partition)},
		},
	})
	if err != nil {
		return fmt.Errorf("list offsets after OFFSET_OUT_OF_RANGE: %w", err)
	}
	for _, p := range res.Topics[r.cfg.Topic] {
		if p.Partition != r.cfg.Partition {
			continue
		}
		if p.Error != nil {
			return fmt.Errorf("list offsets after OFFSET_OUT_OF_RANGE: %w", p.Error)
		}
		if offset >= p.FirstOffset && offset <= p.LastOffset {
			return fmt.Errorf("%w: [%d, %d]", errOutOfRangeRaced, p.FirstOffset, p.LastOffset)
		}
		return &OffsetOutOfRangeError{
			Topic: r.cfg.Topic, Partition: r.cfg.Partition,
			Offset: offset, LogStart: p.FirstOffset, LogEnd: p.LastOffset,
		}
	}
	return fmt.Errorf("list offsets after OFFSET_OUT_OF_RANGE: no answer for %s[%d]", r.cfg.Topic, r.cfg.Partition)
}
