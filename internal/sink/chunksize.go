package sink

import (
	"context"
	"errors"
	"fmt"
)

// ErrChunkSizeChanged is matched (errors.Is) by the *ChunkSizeError that
// EnsureChunkSize returns.
var ErrChunkSizeChanged = errors.New("chunk size changed")

// ChunkSizeError reports that a topic was rolled up with another chunk size.
type ChunkSizeError struct {
	Topic    string
	Want     int64 // the configured CHUNK_SIZE
	Recorded int64 // the size recorded in usage_settings
}

func (e *ChunkSizeError) Error() string {
	return fmt.Sprintf("CHUNK_SIZE=%d but topic %q was rolled up with chunk size %d; changing it would double count",
		e.Want, e.Topic, e.Recorded)
}

// Is makes errors.Is(err, ErrChunkSizeChanged) true.
func (e *ChunkSizeError) Is(target error) bool { return target == ErrChunkSizeChanged }

// EnsureChunkSize records chunkSize for topic on first use and otherwise
// checks it against the recorded size. Rollup rows are keyed by chunk number,
// so the same offsets under another chunk size would land in other chunks
// and be counted twice; the consumer must refuse to start instead.
//
// Replicas starting at once may each record a size. The earliest row wins
// (ties broken by the smaller size), and every replica reads the winner back
// after writing, so all agree and any replica configured differently fails.
func (s *Sink) EnsureChunkSize(ctx context.Context, topic string, chunkSize int64) error {
	if chunkSize <= 0 {
		return fmt.Errorf("CHUNK_SIZE must be > 0, got %d", chunkSize)
	}
	recorded, ok, err := s.recordedChunkSize(ctx, topic)
	if err != nil {
		return err
	}
	if !ok {
		query := "INSERT INTO " + s.database + ".usage_settings (topic, chunk_size, created_at)"
		err := s.insert(ctx, query, func(b batch) error { return b.Append(topic, chunkSize, now()) })
		if err != nil {
			return fmt.Errorf("record chunk size of topic %q: %w", topic, err)
		}
		if recorded, ok, err = s.recordedChunkSize(ctx, topic); err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("record chunk size of topic %q: row not visible after insert", topic)
		}
	}
	if recorded != chunkSize {
		return &ChunkSizeError{Topic: topic, Want: chunkSize, Recorded: recorded}
	}
	return nil
}

func (s *Sink) recordedChunkSize(ctx context.Context, topic string) (size int64, ok bool, err error) {
	ctx, cancel := s.statementContext(ctx)
	defer cancel()
	rows, err := s.conn.Query(ctx, "SELECT chunk_size FROM "+s.database+".usage_settings"+
		" WHERE topic = ? ORDER BY created_at, chunk_size LIMIT 1", topic)
	if err != nil {
		return 0, false, fmt.Errorf("read chunk size of topic %q: %w", topic, err)
	}
	defer rows.Close()
	if rows.Next() {
		if err := rows.Scan(&size); err != nil {
			return 0, false, fmt.Errorf("read chunk size of topic %q: %w", topic, err)
		}
		ok = true
	}
	if err := rows.Err(); err != nil {
		return 0, false, fmt.Errorf("read chunk size of topic %q: %w", topic, err)
	}
	return size, ok, nil
}
