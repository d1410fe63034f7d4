package consumer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/events"
	"github.com/usage-rollup/usage-rollup/internal/partitionlog"
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
	// contiguousFrom is the first offset from which this worker has seen
	// every offset of the log: where it started reading, or just past the
	// last gap (offsets retention, DeleteRecords or compaction removed). A
	// chunk is recomputed from the log only while the whole of it and of the
	// chunk before lie in that range (replayable); otherwise it continues
	// from what ClickHouse holds (carry).
	contiguousFrom int64
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
	first, end, ok := w.logBounds(ctx)
	if !ok {
		return
	}
	if committed > end {
		w.pastLogEnd(ctx, committed, first, end)
		return
	}
	start := w.resume(committed, first)
	rcfg := partitionlog.DefaultConfig(w.topic, w.partition)
	rcfg.MaxBytes, rcfg.MaxWait, rcfg.RetryBackoffMax = int32(w.c.cfg.FetchMaxBytes), fetchMaxWait, w.c.cfg.RetryBackoffMax
	reader, err := partitionlog.NewReader(w.c.client, rcfg, w.c.budget, w.log)
	if err != nil { // a configuration error New should have caught
		w.log.Error().Err(err).Msg("create partition reader")
		<-ctx.Done()
		return
	}

	// The pump is the only user of reader. fetches is unbuffered: while a
	// write is retried the pump holds at most one fetch, and the process-wide
	// budget bounds what all pumps hold together.
	readCtx, stopReading := context.WithCancel(ctx)
	fetches := make(chan fetched)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pump(readCtx, reader, start, fetches)
	}()
	defer func() {
		stopReading()
		wg.Wait()
	}()

	ticker := time.NewTicker(w.c.cfg.FlushInterval)
	defer ticker.Stop()
	for {
		select {
		case f := <-fetches:
			err := w.apply(ctx, f)
			if f.fetch != nil {
				f.fetch.Release()
			}
			if err != nil {
				w.finish(ctx, stopReading)
				if oor := (*partitionlog.OffsetOutOfRangeError)(nil); errors.As(err, &oor) {
					w.pastLogEnd(ctx, oor.Offset, oor.LogStart, oor.LogEnd)
				}
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
		case <-ctx.Done():
			w.finish(ctx, stopReading)
			return
		}
	}
}

// fetched is what the pump hands the worker: a fetch, offsets found
// deleted below the log start, or the error that stopped it.
type fetched struct {
	fetch *partitionlog.Fetch
	gap   partitionlog.Range
	err   error
}

// pump fetches from offset on and hands each result over until ctx ends or
// the reader fails. Offsets that retention deleted before they were fetched
// are handed over as a gap, and fetching goes on at the log start.
func pump(ctx context.Context, r *partitionlog.Reader, offset int64, out chan<- fetched) {
	for {
		f, err := r.Fetch(ctx, offset)
		var item fetched
		oor := (*partitionlog.OffsetOutOfRangeError)(nil)
		switch {
		case err == nil:
			item, offset = fetched{fetch: f}, f.Next
		case errors.As(err, &oor) && oor.Offset < oor.LogStart:
			item, offset = fetched{gap: partitionlog.Range{From: oor.Offset, To: oor.LogStart}}, oor.LogStart
		case ctx.Err() != nil:
			return
		default:
			item = fetched{err: err}
		}
		select {
		case out <- item:
		case <-ctx.Done():
			if item.fetch != nil {
				item.fetch.Release()
			}
			return
		}
		if item.err != nil {
			return
		}
	}
}

// apply feeds one pump result to the partition: gaps before the records
// they precede, then the records. It returns an error when the partition
// cannot go on: ctx ended while a write it needed was still failing, or the
// reader failed (the generation is left and rejoined).
func (w *partitionWorker) apply(ctx context.Context, f fetched) error {
	if f.err != nil {
		if oor := (*partitionlog.OffsetOutOfRangeError)(nil); !errors.As(f.err, &oor) {
			w.log.Error().Err(f.err).Msg("read partition; leaving generation to rejoin")
		}
		return f.err
	}
	if f.fetch == nil {
		w.log.Error().Int64("from", f.gap.From).Int64("to", f.gap.To).
			Msg("offsets deleted by retention before this consumer read them are lost")
		w.gap(f.gap.From, f.gap.To)
		return nil
	}
	gaps := f.fetch.Gaps
	for i := range f.fetch.Records {
		r := &f.fetch.Records[i]
		for len(gaps) > 0 && gaps[0].From < r.Offset {
			w.gap(gaps[0].From, gaps[0].To)
			gaps = gaps[1:]
		}
		if err := w.handle(ctx, r); err != nil {
			return err
		}
	}
	for _, g := range gaps {
		w.gap(g.From, g.To)
	}
	return nil
}

// resume decides where to start reading. The committed offset only says
// which chunk to resume: the chunk is re-read from its first offset (its
// rows are a function of the whole chunk prefix), and the chunk before it is
// read too, to rebuild the dedup set.
func (w *partitionWorker) resume(committed, first int64) int64 {
	w.committed = committed
	if committed < 0 { // nothing committed: start at the beginning of the log
		committed = first
	}
	if committed < first {
		// The group fell behind retention: these offsets were deleted
		// before it read them. Nothing can bring them back; say so.
		w.c.metrics.gapOffsets.Add(float64(first - committed))
		w.log.Error().Int64("committed", committed).Int64("log_start", first).
			Msg("committed offset is below the log start: records deleted before this group read them are lost")
	}
	chunk := w.state.ChunkOf(committed)
	chunkStart := w.state.ChunkStart(chunk)
	if chunkStart < first {
		// Retention or DeleteRecords removed the head of the chunk: it
		// continues from its stored rows (see replayable), from the first
		// retained offset on.
		w.log.Info().Int64("chunk_start", chunkStart).Int64("first_offset", first).
			Msg("log head deleted inside the resume chunk; continuing it from stored rows")
		chunkStart = first
	}
	warmStart := max(w.state.ChunkStart(chunk-1), first, 0)
	w.warmUntil = chunkStart
	w.contiguousFrom = warmStart
	w.state.Begin(chunk - 1)
	if warmStart >= chunkStart {
		w.state.Begin(chunk)
	}
	w.c.status.resumed(w.partition, committed)
	w.log.Info().Int64("committed", committed).Int64("chunk", chunk).Int64("read_from", warmStart).
		Int64("aggregate_from", chunkStart).Msg("partition assigned")
	return warmStart
}

// logBounds asks the broker for the partition's first retained offset and
// its log end, retrying until ctx ends.
func (w *partitionWorker) logBounds(ctx context.Context) (first, end int64, ok bool) {
	for attempt := 0; ; attempt++ {
		res, err := w.c.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
			Topics: map[string][]kafka.OffsetRequest{w.topic: {kafka.FirstOffsetOf(w.partition), kafka.LastOffsetOf(w.partition)}},
		})
		if err == nil {
			for _, po := range res.Topics[w.topic] {
				if po.Partition == w.partition && po.Error == nil {
					return po.FirstOffset, po.LastOffset, true
				}
				if po.Partition == w.partition {
					err = po.Error
				}
			}
			if err == nil {
				err = errors.New("partition missing from response")
			}
		}
		w.log.Warn().Err(err).Msg("list log start and end offsets; retrying")
		if !sleep(ctx, backoff(attempt, w.c.cfg.RetryBackoffMax)) {
			return 0, 0, false
		}
	}
}

// pastLogEndReport is how often a partition whose committed offset lies past
// its log end repeats its error while it stays assigned.
const pastLogEndReport = time.Minute

// pastLogEnd holds a partition whose committed offset lies past its log end
// until the generation ends, saying so loudly. That happens when the topic
// was deleted and re-created (offsets restart at 0) or an unclean leader
// election truncated the log. Neither jumping to the end nor to the start is
// safe: a re-created topic's offsets collide with the stored rows' keys of
// the old one, and jumping to the end would skip what was produced since.
// The operator decides (docs/operations.md, "Committed offset past the log
// end").
func (w *partitionWorker) pastLogEnd(ctx context.Context, committed, first, end int64) {
	label := strconv.Itoa(w.partition)
	w.c.metrics.outOfRange.WithLabelValues(label).Set(1)
	defer w.c.metrics.outOfRange.DeleteLabelValues(label)
	for {
		w.log.Error().Int64("committed", committed).Int64("log_start", first).Int64("log_end", end).
			Msg("committed offset is past the log end (topic re-created or log truncated); not consuming this partition until an operator resets the group's offset")
		if !sleep(ctx, pastLogEndReport) {
			return
		}
	}
}

// handle feeds one record. It returns an error only when ctx ended while a
// write it needed was still failing.
func (w *partitionWorker) handle(ctx context.Context, m *partitionlog.Record) error {
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
		if !w.replayable(chunk) {
			if err := w.carry(ctx); err != nil {
				return err
			}
		}
	} else if !w.state.Carrying() && !w.replayable(chunk) {
		// A gap inside the chunk: records this chunk's rows may already
		// include are gone. Write what is pending, then continue from what
		// is stored instead of overwriting it with a shorter aggregate.
		if w.state.Pending() {
			if err := w.flush(ctx); err != nil {
				return err
			}
		}
		if err := w.carry(ctx); err != nil {
			return err
		}
	}
	if w.state.NeedsSegment(m.Offset) {
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
		w.deadLetter(m.Offset, m.Time, m.Key, m.Value, rej)
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

// gap records that the log no longer holds the offsets [from, to): chunks
// whose rows or dedup horizon include them can no longer be recomputed from
// the log.
func (w *partitionWorker) gap(from, to int64) {
	w.c.metrics.gapOffsets.Add(float64(to - from))
	w.log.Warn().Int64("from", from).Int64("to", to).
		Msg("offsets missing from the log (retention, DeleteRecords or compaction); affected chunks continue from stored rows")
	w.contiguousFrom = max(w.contiguousFrom, to)
}

// replayable reports whether chunk can be recomputed from the log: this
// worker read every offset from the start of the chunk before it (whose ids
// and event times decide dedup and lateness) up to now.
func (w *partitionWorker) replayable(chunk int64) bool {
	return w.contiguousFrom <= max(w.state.ChunkStart(chunk-1), 0)
}

// carry continues the current chunk from the rows ClickHouse holds of it,
// reading them with retries until they arrive or ctx ends.
func (w *partitionWorker) carry(ctx context.Context) error {
	chunk := w.state.Chunk()
	for attempt := 0; ; attempt++ {
		stored, err := w.c.writer.ReadChunk(ctx, w.topic, int32(w.partition), chunk)
		if err == nil {
			w.state.Carry(stored)
			w.c.metrics.carried.Inc()
			w.log.Info().Int64("chunk", chunk).Int64("segment", stored.Segment).
				Int64("stored_through", stored.Progress.LastOffset).Int("groups", w.state.Groups()).
				Msg("chunk not reproducible from the log; continuing from stored rows")
			return nil
		}
		d := backoff(attempt, w.c.cfg.RetryBackoffMax)
		w.log.Warn().Err(err).Int64("chunk", chunk).Dur("retry_in", d).Msg("read stored chunk; retrying")
		if !sleep(ctx, d) {
			return fmt.Errorf("read stored chunk %d: %w", chunk, ctx.Err())
		}
	}
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
