package ingest

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/backoff"
)

// partitionStore is one partition's writer chain around the BatchWriter:
// dead letters first, then the batch, each retried with capped jittered
// backoff until it is durable or ctx ends, with the write metrics. A batch
// is never given up: dropping it would lose events, and a partition
// goroutine that returned would end the generation for every partition
// (kafka-go). It also reads stored chunks back, retried the same way.
type partitionStore struct {
	// out makes one batch durable (in production the coalescer's write);
	// w reads stored chunks and classifies errors.
	out        func(ctx context.Context, b *aggregate.Batch, linger bool) error
	w          BatchWriter
	dead       *deadLetters // nil: no dead-letter topic
	topic      string
	partition  int32
	met        *metrics
	log        zerolog.Logger
	backoffMax time.Duration
}

var _ chunkStore = (*partitionStore)(nil)

// Write writes the queued dead letters and then b. Dead letters go first so
// that an offset is never committed before its dead letter is durable.
func (s *partitionStore) Write(ctx context.Context, b *aggregate.Batch, linger bool) error {
	if s.dead != nil {
		if err := s.dead.write(ctx); err != nil {
			return err
		}
	}
	err := backoff.Retry(ctx, s.backoffMax, func() error {
		return s.out(ctx, b, linger)
	}, func(err error, attempt int, next time.Duration) {
		level, class := zerolog.WarnLevel, "transient"
		if !s.w.Transient(err) {
			level, class = zerolog.ErrorLevel, "permanent"
		}
		s.met.writeErrors.WithLabelValues(class).Inc()
		s.log.WithLevel(level).Err(err).Int("attempt", attempt+1).Dur("retry_in", next).Msg("write batch; retrying")
	})
	if err != nil {
		return fmt.Errorf("write chunk %d up to offset %d: %w", b.Chunk, b.Progress.LastOffset, err)
	}
	return nil
}

// ReadChunk reads what is stored of chunk.
func (s *partitionStore) ReadChunk(ctx context.Context, chunk int64) (*aggregate.StoredChunk, error) {
	var stored *aggregate.StoredChunk
	err := backoff.Retry(ctx, s.backoffMax, func() error {
		var err error
		stored, err = s.w.ReadChunk(ctx, s.topic, s.partition, chunk)
		return err
	}, func(err error, attempt int, next time.Duration) {
		s.log.Warn().Err(err).Int64("chunk", chunk).Dur("retry_in", next).Msg("read stored chunk; retrying")
	})
	return stored, err
}
