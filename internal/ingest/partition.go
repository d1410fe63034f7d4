package ingest

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/backoff"
	"github.com/usage-rollup/usage-rollup/internal/events"
	"github.com/usage-rollup/usage-rollup/internal/kafkaoffsets"
	"github.com/usage-rollup/usage-rollup/internal/partitionlog"
)

// fetchMaxWait is how long the broker may hold a fetch of an idle partition.
// Data is returned as soon as there is any (MinBytes is 1), so this only sets
// how often an idle partition polls, and how long closing waits for a fetch
// in flight.
const fetchMaxWait = 2 * time.Second

// partitionLoop is the Kafka side of one assigned partition for one
// generation: where the log starts and ends, the fetch pump, the flush
// ticker, the commit step and the partition's status. What the records mean
// is the processor's business. All of it is dropped when the generation
// ends, so a revoked partition leaves nothing behind.
type partitionLoop struct {
	c         *Consumer
	gen       committer
	topic     string
	partition int
	log       zerolog.Logger
	proc      *processor
	// committed is the group's committed offset for the partition: the one
	// assigned, then the last this loop committed. Commits only move it up.
	committed int64
	// reportedGroups and reportedBytes are this partition's shares of the
	// process-wide state gauges.
	reportedGroups int
	reportedBytes  int64
	// lastRecord is when the last record arrived, for idleness.
	lastRecord time.Time
	// backlog is set while the partition is at least backlogRecords behind
	// the log end (see drained).
	backlog bool
	// lastSeal is when this loop last tried to write a seal record.
	lastSeal time.Time
	// closedMs is the closed_through this loop last wrote.
	closedMs int64
	// deadLetterWriter is this partition's own dead-letter producer (nil:
	// no dead-letter topic), closed when the loop ends.
	deadLetterWriter *kafka.Writer
}

func newPartitionLoop(c *Consumer, gen committer, partition int) *partitionLoop {
	l := &partitionLoop{
		c:          c,
		gen:        gen,
		topic:      c.cfg.Topic,
		partition:  partition,
		log:        c.log.With().Int("partition", partition).Logger(),
		lastRecord: time.Now(),
	}
	var dead *deadLetters
	if c.newDeadLetterWriter != nil {
		l.deadLetterWriter = c.newDeadLetterWriter()
		dead = &deadLetters{writer: l.deadLetterWriter, topic: l.topic, partition: partition, log: l.log,
			met: c.metrics, backoffMax: c.cfg.RetryBackoffMax}
	}
	store := &partitionStore{out: c.out.write, w: c.writer, dead: dead, topic: l.topic, partition: int32(partition),
		met: c.metrics, log: l.log, backoffMax: c.cfg.RetryBackoffMax}
	l.proc = &processor{
		agg:     c.agg,
		topic:   l.topic,
		part:    int32(partition),
		log:     l.log,
		met:     c.metrics,
		store:   store,
		durable: l.commit,
		dec:     events.NewDecoder(c.dec),
		state:   aggregate.NewChunkState(c.agg),
	}
	if dead != nil { // a nil *deadLetters in the interface would not be nil
		l.proc.dead = dead
	}
	return l
}

// run consumes the partition until ctx (the generation) ends. It must not
// return earlier: kafka-go ends the generation for every member's partitions
// as soon as one started function returns. So write failures are retried
// (by the writer chain), never returned.
func (l *partitionLoop) run(ctx context.Context, committed int64) {
	if l.deadLetterWriter != nil {
		defer func() {
			if err := l.deadLetterWriter.Close(); err != nil {
				l.log.Warn().Err(err).Msg("close dead-letter writer")
			}
		}()
	}
	first, end, ok := l.logBounds(ctx)
	if !ok {
		return
	}
	if committed > end {
		l.pastLogEnd(ctx, committed, first, end)
		return
	}
	l.committed = committed
	start := l.proc.resume(committed, first)
	l.c.status.resumed(l.partition, max(committed, first))
	rcfg := partitionlog.DefaultConfig(l.topic, l.partition)
	rcfg.MaxBytes, rcfg.MaxWait, rcfg.RetryBackoffMax = int32(l.c.cfg.FetchMaxBytes), fetchMaxWait, l.c.cfg.RetryBackoffMax
	reader, err := partitionlog.NewReader(l.c.client, rcfg, l.c.budget, l.log)
	if err != nil { // a configuration error New should have caught
		l.log.Error().Err(err).Msg("create partition reader")
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

	ticker := time.NewTicker(l.c.cfg.FlushInterval)
	defer ticker.Stop()
	for {
		select {
		case f := <-fetches:
			err := l.apply(ctx, f)
			if f.fetch != nil {
				f.fetch.Release()
			}
			if err != nil {
				l.finish(ctx, stopReading)
				if oor := (*partitionlog.OffsetOutOfRangeError)(nil); errors.As(err, &oor) {
					l.pastLogEnd(ctx, oor.Offset, oor.LogStart, oor.LogEnd)
				}
				return
			}
		case <-ticker.C:
			if l.proc.pending() {
				if err := l.proc.flush(ctx); err != nil {
					l.finish(ctx, stopReading)
					return
				}
			} else {
				l.idle(ctx)
			}
		case <-ctx.Done():
			l.finish(ctx, stopReading)
			return
		}
	}
}

// fetched is what the pump hands the loop: a fetch, offsets found deleted
// below the log start, or the error that stopped it.
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

// apply feeds one pump result to the processor: gaps before the records
// they precede, then the records. It returns an error when the partition
// cannot go on: ctx ended while a write it needed was still failing, or the
// reader failed (the generation is left and rejoined).
func (l *partitionLoop) apply(ctx context.Context, f fetched) error {
	if f.err != nil {
		if oor := (*partitionlog.OffsetOutOfRangeError)(nil); !errors.As(f.err, &oor) {
			l.log.Error().Err(f.err).Msg("read partition; leaving generation to rejoin")
		}
		return f.err
	}
	if f.fetch == nil {
		l.log.Error().Int64("from", f.gap.From).Int64("to", f.gap.To).
			Msg("offsets deleted by retention before this consumer read them are lost")
		l.proc.gap(f.gap.From, f.gap.To)
		return nil
	}
	if len(f.fetch.Records) > 0 {
		l.lastRecord = time.Now()
	}
	gaps := f.fetch.Gaps
	for i := range f.fetch.Records {
		r := &f.fetch.Records[i]
		for len(gaps) > 0 && gaps[0].From < r.Offset {
			l.proc.gap(gaps[0].From, gaps[0].To)
			gaps = gaps[1:]
		}
		if err := l.proc.handle(ctx, r); err != nil {
			return err
		}
	}
	for _, g := range gaps {
		l.proc.gap(g.From, g.To)
	}
	return l.drained(ctx, f.fetch)
}

// backlogRecords is how far behind the log end a partition must have been
// for reaching it to count as draining a backlog.
const backlogRecords = 10_000

// drained flushes a partition that has just read the last records of a
// backlog (a restart, an outage, a replay), instead of leaving them to the
// next tick: the backlog's end becomes queryable and committed up to
// FLUSH_INTERVAL sooner. A partition that keeps up never falls
// backlogRecords behind, so its flushes stay on the ticker, which is what
// keeps inserts per second independent of the partition count.
func (l *partitionLoop) drained(ctx context.Context, f *partitionlog.Fetch) error {
	end := f.HighWatermark
	if f.LastStableOffset >= 0 { // read committed: nothing past it is readable yet
		end = min(end, f.LastStableOffset)
	}
	switch lag := end - f.Next; {
	case lag >= backlogRecords:
		l.backlog = true
	case lag <= 0 && l.backlog:
		l.backlog = false
		if l.proc.pending() {
			return l.proc.flush(ctx)
		}
	}
	return nil
}

// commit is the step after a durable write: commit the offset after the
// batch, then publish status, finality and metrics. The commit is a resume
// hint: a lost commit only means a longer re-read, never a different result.
func (l *partitionLoop) commit(ctx context.Context, b *aggregate.Batch, chunkDone bool) {
	next := b.Progress.LastOffset + 1
	// A resumed partition re-reads its chunk from the start, so its first
	// writes cover offsets below the commit it resumed from. Committing them
	// would move the group's offset backwards: only commit forward.
	if next > l.committed {
		start := time.Now()
		if err := l.gen.CommitOffsets(map[string]map[int]int64{l.topic: {l.partition: next}}); err != nil {
			l.c.metrics.commitErrs.Inc()
			l.log.Warn().Err(err).Int64("offset", next).Msg("commit offset (harmless: resume re-reads the chunk)")
		} else {
			l.committed = next
			l.c.metrics.commits.Inc()
			l.c.metrics.commitTime.Observe(time.Since(start).Seconds())
		}
	}
	now := time.Now()
	l.c.status.advance(l.partition, next, b.Progress.WatermarkMs, b.Progress.MaxEventTimeMs, now)
	l.c.metrics.lastProgress.Set(float64(now.Unix()))
	if chunkDone {
		l.c.metrics.chunks.Inc()
	}
	l.reportState()
	l.writeFinality(ctx, b.Progress.WatermarkMs, b.Progress.MaxEventTimeMs, next, false)
}

// reportState moves this partition's contribution to the process-wide gauges.
func (l *partitionLoop) reportState() {
	g, b := l.proc.state.Groups(), l.proc.state.MemoryBytes()
	l.c.metrics.groups.Add(float64(g - l.reportedGroups))
	l.c.metrics.stateBytes.Add(float64(b - l.reportedBytes))
	l.reportedGroups, l.reportedBytes = g, b
}

// finish stops fetching and makes what the partition holds durable within
// ShutdownTimeout, even though ctx (the generation) has ended.
func (l *partitionLoop) finish(ctx context.Context, stopReading context.CancelFunc) {
	stopReading()
	defer func() {
		l.c.metrics.groups.Add(-float64(l.reportedGroups))
		l.c.metrics.stateBytes.Add(-float64(l.reportedBytes))
	}()
	if !l.proc.pending() {
		return
	}
	start := time.Now()
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.c.cfg.ShutdownTimeout)
	defer cancel()
	if err := l.proc.flush(fctx); err != nil {
		l.log.Warn().Err(err).Msg("final flush did not complete; the next owner re-reads from the last commit")
		return
	}
	l.log.Info().Dur("took", time.Since(start)).Int64("last_offset", l.proc.state.Progress().LastOffset).Msg("final flush done")
}

// logBounds asks the broker for the partition's first retained offset and
// its log end, retrying until ctx ends.
func (l *partitionLoop) logBounds(ctx context.Context) (first, end int64, ok bool) {
	err := backoff.Retry(ctx, l.c.cfg.RetryBackoffMax, func() error {
		bounds, err := kafkaoffsets.List(ctx, l.c.client, l.topic, l.partition)
		first, end = bounds[l.partition].First, bounds[l.partition].End
		return err
	}, func(err error, _ int, next time.Duration) {
		l.log.Warn().Err(err).Dur("retry_in", next).Msg("list log start and end offsets; retrying")
	})
	return first, end, err == nil
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
// The operator decides (docs/operations.md, "UsageRollupOffsetOutOfRange").
func (l *partitionLoop) pastLogEnd(ctx context.Context, committed, first, end int64) {
	label := strconv.Itoa(l.partition)
	l.c.metrics.outOfRange.WithLabelValues(label).Set(1)
	defer l.c.metrics.outOfRange.DeleteLabelValues(label)
	for {
		l.log.Error().Int64("committed", committed).Int64("log_start", first).Int64("log_end", end).
			Msg("committed offset is past the log end (topic re-created or log truncated); not consuming this partition until an operator resets the group's offset")
		if !backoff.Sleep(ctx, pastLogEndReport) {
			return
		}
	}
}
