package consumer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/events"
)

// fetchMaxWait is how long the broker may hold a fetch of an idle partition.
// Data is returned as soon as there is any (MinBytes is 1), so this only sets
// how often an idle partition polls. kafka-go gives the broker maxWait minus an
// RTT allowance and times the read out at maxWait, so values under a second
// leave too little margin and end in i/o timeouts and reconnects. It also
// bounds shutdown: closing a reader waits for its fetch in flight.
const fetchMaxWait = 2 * time.Second

// partitionWorker owns one assigned partition for one generation: its reader,
// decoder and aggregate state. All of it is dropped when the generation ends,
// so a revoked partition leaves nothing behind.
type partitionWorker struct {
	c         *Consumer
	gen       committer
	topic     string
	partition int
	log       zerolog.Logger
	dec       *events.Decoder
	state     *aggregate.Partition
	ev        events.Event
	// committed is the group's committed offset for the partition: the one
	// assigned, then the last this worker committed. Commits only move it up.
	committed int64
	// warmUntil is the first offset that is aggregated; records below it
	// (the chunk before the resume chunk) only rebuild the dedup set.
	warmUntil int64
	// unwritten is a batch taken from state whose write has not succeeded
	// yet; it is retried by the final flush instead of being lost.
	unwritten *aggregate.Batch
	// reportedGroups and reportedBytes are this worker's shares of the
	// process-wide state gauges.
	reportedGroups int
	reportedBytes  int64
	// deadLetters holds rejected messages until the next flush writes them
	// to the dead-letter topic, before the ClickHouse write and the commit.
	deadLetters     []kafka.Message
	deadLetterBytes int
	// lastRecord is when the last record arrived, for idleness.
	lastRecord time.Time
	// closedMs is the closed_through this worker last wrote.
	closedMs int64
	// chunkDone marks that the batch in flight completes its chunk.
	chunkDone bool
}

func newPartitionWorker(c *Consumer, gen committer, partition int) *partitionWorker {
	return &partitionWorker{
		c:          c,
		gen:        gen,
		topic:      c.cfg.Topic,
		partition:  partition,
		log:        c.log.With().Int("partition", partition).Logger(),
		dec:        events.NewDecoder(c.dec),
		state:      aggregate.NewPartition(c.agg),
		lastRecord: time.Now(),
	}
}

// run consumes the partition until ctx (the generation) ends. It must not
// return earlier: kafka-go ends the generation for every member's partitions
// as soon as one started function returns. So write failures are retried
// here with backoff, never returned.
func (w *partitionWorker) run(ctx context.Context, committed int64) {
	start, ok := w.resume(ctx, committed)
	if !ok {
		return
	}
	reader := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     w.c.cfg.Brokers,
		Topic:       w.topic,
		Partition:   w.partition,
		Dialer:      w.c.dialer,
		MinBytes:    1,
		MaxBytes:    w.c.cfg.FetchMaxBytes,
		MaxWait:     fetchMaxWait,
		Logger:      kafkaLogger(w.log, zerolog.DebugLevel),
		ErrorLogger: kafkaLogger(w.log, zerolog.WarnLevel),
	})
	if err := reader.SetOffset(start); err != nil {
		w.log.Error().Err(err).Int64("offset", start).Msg("set reader offset")
		_ = reader.Close()
		<-ctx.Done()
		return
	}

	// The pump is the only reader of reader; msgs is unbuffered so that while
	// a write is retried, fetching stops at the reader's own bounded queue.
	readCtx, stopReading := context.WithCancel(ctx)
	msgs := make(chan kafka.Message)
	readErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pump(readCtx, reader, msgs, readErr)
	}()
	defer func() {
		stopReading()
		wg.Wait()
		if err := reader.Close(); err != nil {
			w.log.Warn().Err(err).Msg("close partition reader")
		}
	}()

	ticker := time.NewTicker(w.c.cfg.FlushInterval)
	defer ticker.Stop()
	for {
		select {
		case m := <-msgs:
			if err := w.handle(ctx, &m); err != nil {
				w.finish(ctx, stopReading)
				return
			}
		case <-ticker.C:
			if w.state.Pending() {
				if err := w.flush(ctx); err != nil {
					w.finish(ctx, stopReading)
					return
				}
			} else {
				w.idle(ctx)
			}
		case err := <-readErr:
			w.log.Error().Err(err).Msg("read partition; leaving generation to rejoin")
			w.finish(ctx, stopReading)
			return
		case <-ctx.Done():
			w.finish(ctx, stopReading)
			return
		}
	}
}

// pump feeds msgs until ctx ends or the reader fails.
func pump(ctx context.Context, r *kafka.Reader, msgs chan<- kafka.Message, errc chan<- error) {
	for {
		// A Reader without GroupID never commits: ReadMessage only fetches.
		m, err := r.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() == nil {
				errc <- fmt.Errorf("read %s/%d: %w", r.Config().Topic, r.Config().Partition, err)
			}
			return
		}
		select {
		case msgs <- m:
		case <-ctx.Done():
			return
		}
	}
}

// resume decides where to start reading. The committed offset only says
// which chunk to resume: the chunk is re-read from its first offset (its
// rows are a function of the whole chunk prefix), and the chunk before it is
// read too, to rebuild the dedup set.
func (w *partitionWorker) resume(ctx context.Context, committed int64) (int64, bool) {
	first, ok := w.firstOffset(ctx)
	if !ok {
		return 0, false
	}
	w.committed = committed
	if committed < 0 { // nothing committed: start at the beginning of the log
		committed = first
	}
	chunk := w.state.ChunkOf(committed)
	chunkStart := w.state.ChunkStart(chunk)
	if chunkStart < first {
		// Retention deleted the head of the chunk: its rows can no longer be
		// recomputed in full. This only happens when the group lagged behind
		// retention, which has lost data already; say so loudly.
		w.log.Error().Int64("chunk_start", chunkStart).Int64("first_offset", first).
			Msg("log head deleted inside the resume chunk; rows of this chunk will only cover retained offsets")
		chunkStart = first
	}
	warmStart := max(w.state.ChunkStart(chunk-1), first, 0)
	w.warmUntil = chunkStart
	w.state.Begin(chunk - 1)
	if warmStart >= chunkStart {
		w.state.Begin(chunk)
	}
	w.c.status.resumed(w.partition, committed)
	w.log.Info().Int64("committed", committed).Int64("chunk", chunk).Int64("read_from", warmStart).
		Int64("aggregate_from", chunkStart).Msg("partition assigned")
	return warmStart, true
}

// firstOffset asks the broker for the partition's first retained offset,
// retrying until ctx ends.
func (w *partitionWorker) firstOffset(ctx context.Context) (int64, bool) {
	for attempt := 0; ; attempt++ {
		res, err := w.c.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
			Topics: map[string][]kafka.OffsetRequest{w.topic: {kafka.FirstOffsetOf(w.partition)}},
		})
		if err == nil {
			for _, po := range res.Topics[w.topic] {
				if po.Partition == w.partition && po.Error == nil {
					return po.FirstOffset, true
				}
				if po.Partition == w.partition {
					err = po.Error
				}
			}
			if err == nil {
				err = errors.New("partition missing from response")
			}
		}
		w.log.Warn().Err(err).Msg("list first offset; retrying")
		if !sleep(ctx, backoff(attempt, w.c.cfg.RetryBackoffMax)) {
			return 0, false
		}
	}
}

// handle feeds one record. It returns an error only when ctx ended while a
// write it needed was still failing.
func (w *partitionWorker) handle(ctx context.Context, m *kafka.Message) error {
	w.lastRecord = time.Now()
	if m.Offset < w.warmUntil {
		if w.dec.Decode(m.Value, m.Time, &w.ev) == nil {
			w.state.Warm(&w.ev)
		}
		return nil
	}
	if chunk := w.state.ChunkOf(m.Offset); chunk != w.state.Chunk() {
		// The chunk is complete: make it durable before its state is dropped.
		if w.state.Pending() {
			w.chunkDone = true
			if err := w.flush(ctx); err != nil {
				return err
			}
		}
		w.state.Begin(chunk)
	} else if w.state.NeedsSegment() {
		// The group cap is reached: write the segment, then start a new one.
		// Where this happens depends only on the chunk's records, so a
		// replay cuts at the same offset.
		if err := w.flush(ctx); err != nil {
			return err
		}
		w.state.BeginSegment(m.Offset)
		w.c.metrics.segments.Inc()
	}
	met := w.c.metrics
	met.consumed.Inc()
	met.bytes.Add(float64(len(m.Value)))
	if err := w.dec.Decode(m.Value, m.Time, &w.ev); err != nil {
		rej, ok := events.AsReject(err)
		if !ok { // the decoder promises RejectError; keep the promise visible
			rej = &events.RejectError{Reason: events.ReasonInvalidJSON, Detail: err.Error()}
		}
		met.rejected.WithLabelValues(string(rej.Reason)).Inc()
		w.state.Reject(m.Offset, rej, m.Time, m.Value)
		w.deadLetter(m, rej)
	} else {
		switch w.state.Add(m.Offset, &w.ev) {
		case aggregate.Duplicate:
			met.duplicates.Inc()
		case aggregate.CountedLate:
			met.accepted.Inc()
			met.late.Inc()
		default:
			met.accepted.Inc()
		}
	}
	if w.state.BatchSize() >= w.c.agg.MaxBatchRows || w.deadLetterBytes >= maxDeadLetterBytes {
		return w.flush(ctx)
	}
	return nil
}

// flush makes the pending state durable and then commits: rejected messages
// go to the dead-letter topic, the batch to ClickHouse, each retried with
// capped jittered backoff until it succeeds or ctx ends. Only then is the
// offset after the last record covered committed. The commit is a resume
// hint: a lost commit only means a longer re-read, never a different result.
func (w *partitionWorker) flush(ctx context.Context) error {
	if w.unwritten == nil {
		w.unwritten = w.state.Batch(w.topic, int32(w.partition))
	}
	b := w.unwritten
	if err := w.writeDeadLetters(ctx); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		start := time.Now()
		err := w.c.writer.Write(ctx, b)
		if err == nil {
			w.c.metrics.writes.Inc()
			w.c.metrics.writeTime.Observe(time.Since(start).Seconds())
			for _, wr := range b.Windows {
				w.c.metrics.rows.WithLabelValues(wr.Window.Name).Add(float64(len(wr.Rows)))
			}
			w.unwritten = nil
			break
		}
		level, class := zerolog.WarnLevel, "transient"
		if !w.c.writer.Transient(err) {
			level, class = zerolog.ErrorLevel, "permanent"
		}
		w.c.metrics.writeErrors.WithLabelValues(class).Inc()
		if ctx.Err() != nil {
			return fmt.Errorf("write chunk %d up to offset %d: %w", b.Chunk, b.Progress.LastOffset, ctx.Err())
		}
		d := backoff(attempt, w.c.cfg.RetryBackoffMax)
		w.log.WithLevel(level).Err(err).Int("attempt", attempt+1).Dur("retry_in", d).Msg("write batch; retrying")
		if !sleep(ctx, d) {
			return fmt.Errorf("write chunk %d up to offset %d: %w", b.Chunk, b.Progress.LastOffset, ctx.Err())
		}
	}
	if n := w.c.cfg.CrashAfterWrites; n > 0 && w.c.writes.Add(1) == int64(n) {
		w.log.Warn().Int64("last_offset", b.Progress.LastOffset).Msg("failpoint: killing the process between write and commit")
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL cannot be caught; wait for it to land
	}
	next := b.Progress.LastOffset + 1
	// A resumed partition re-reads its chunk from the start, so its first
	// writes cover offsets below the commit it resumed from. Committing them
	// would move the group's offset backwards: only commit forward.
	if next > w.committed {
		start := time.Now()
		if err := w.gen.CommitOffsets(map[string]map[int]int64{w.topic: {w.partition: next}}); err != nil {
			w.c.metrics.commitErrs.Inc()
			w.log.Warn().Err(err).Int64("offset", next).Msg("commit offset (harmless: resume re-reads the chunk)")
		} else {
			w.committed = next
			w.c.metrics.commits.Inc()
			w.c.metrics.commitTime.Observe(time.Since(start).Seconds())
		}
	}
	now := time.Now()
	w.c.status.advance(w.partition, next, b.Progress.WatermarkMs, b.Progress.MaxEventTimeMs, now)
	w.c.metrics.lastProgress.Set(float64(now.Unix()))
	if w.chunkDone {
		w.c.metrics.chunks.Inc()
		w.chunkDone = false
	}
	w.reportState()
	w.writeFinality(ctx, b.Progress.WatermarkMs, b.Progress.MaxEventTimeMs, next, false)
	return nil
}

// reportState moves this worker's contribution to the process-wide gauges.
func (w *partitionWorker) reportState() {
	g, b := w.state.Groups(), w.state.MemoryBytes()
	w.c.metrics.groups.Add(float64(g - w.reportedGroups))
	w.c.metrics.stateBytes.Add(float64(b - w.reportedBytes))
	w.reportedGroups, w.reportedBytes = g, b
}

// finish stops fetching and makes what the partition holds durable within
// ShutdownTimeout, even though ctx (the generation) has ended.
func (w *partitionWorker) finish(ctx context.Context, stopReading context.CancelFunc) {
	stopReading()
	defer func() {
		w.c.metrics.groups.Add(-float64(w.reportedGroups))
		w.c.metrics.stateBytes.Add(-float64(w.reportedBytes))
	}()
	if w.unwritten == nil && !w.state.Pending() {
		return
	}
	start := time.Now()
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.c.cfg.ShutdownTimeout)
	defer cancel()
	if err := w.flush(fctx); err != nil {
		w.log.Warn().Err(err).Msg("final flush did not complete; the next owner re-reads from the last commit")
		return
	}
	w.log.Info().Dur("took", time.Since(start)).Int64("last_offset", w.state.Progress().LastOffset).Msg("final flush done")
}
