package ingest

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/events"
	"github.com/usage-rollup/usage-rollup/internal/partitionlog"
)

// chunkStore is what a processor needs to make its state durable: the writer
// chain (dead letters, then the batch, each retried until durable or ctx
// ends) and the read-back of a chunk the log can no longer reproduce.
type chunkStore interface {
	// Write makes b durable, retrying until it is or ctx ends. linger lets
	// the write wait briefly for other partitions' writes to share its
	// INSERTs (see coalescer).
	Write(ctx context.Context, b *aggregate.Batch, linger bool) error
	// ReadChunk returns what is stored of chunk, retrying until it can or
	// ctx ends.
	ReadChunk(ctx context.Context, chunk int64) (*aggregate.StoredChunk, error)
}

// deadLetterQueue is where a processor puts rejected records for the
// dead-letter topic; the writer chain writes them before the batch that
// covers them.
type deadLetterQueue interface {
	add(offset int64, rec *partitionlog.Record, rej *events.RejectError)
	// bytes is what the queue holds, for the flush policy.
	bytes() int
}

// processor turns one partition's records into durable rollup batches for
// one generation: where to resume, decode, dedup and aggregate (through
// aggregate.ChunkState), whether a chunk is recomputed from the log or
// carried from its stored rows, and when to flush. It knows nothing of
// Kafka: the partition loop feeds it records and gaps and commits what
// durable reports. It is not safe for concurrent use.
type processor struct {
	agg   aggregate.Config
	topic string
	part  int32
	log   zerolog.Logger
	met   *metrics
	store chunkStore
	dead  deadLetterQueue // nil: no dead-letter topic
	// durable is the commit step: called after each batch is durable, with
	// whether the batch completed its chunk.
	durable func(ctx context.Context, b *aggregate.Batch, chunkDone bool)

	dec   *events.Decoder
	ev    events.Event
	state *aggregate.ChunkState
	// warmUntil is the first offset that is aggregated; records below it
	// (the chunk before the resume chunk) only rebuild the dedup set.
	warmUntil int64
	// contiguousFrom is the first offset from which this processor has seen
	// every offset of the log: where it started reading, or just past the
	// last gap (offsets retention, DeleteRecords or compaction removed). A
	// chunk is recomputed from the log only while the whole of it and of the
	// chunk before lie in that range (replayable); otherwise it continues
	// from what ClickHouse holds (carry).
	contiguousFrom int64
	// unwritten is a batch taken from state whose write has not succeeded
	// yet; the next flush writes it again instead of losing it.
	unwritten *aggregate.Batch
	// chunkDone marks that the batch in flight completes its chunk.
	chunkDone bool
}

// maxDeadLetterBytes bounds the rejected records a partition holds for the
// dead-letter topic between flushes; a burst of large poison messages makes
// it flush early instead of growing.
const maxDeadLetterBytes = 16 << 20

// resume decides where to start reading, from the group's committed offset
// (-1: none) and the log's first retained offset. The committed offset only
// says which chunk to resume: the chunk is re-read from its first offset
// (its rows are a function of the whole chunk prefix), and the chunk before
// it is read too, without aggregating, to rebuild the dedup set and the
// watermark. What the log no longer holds is handled by carry.
func (p *processor) resume(committed, first int64) (readFrom int64) {
	if committed < 0 { // nothing committed: start at the beginning of the log
		committed = first
	}
	if committed < first {
		// The group fell behind retention: these offsets were deleted
		// before it read them. Nothing can bring them back; say so.
		p.met.gapOffsets.Add(float64(first - committed))
		p.log.Error().Int64("committed", committed).Int64("log_start", first).
			Msg("committed offset is below the log start: records deleted before this group read them are lost")
	}
	chunk := p.state.ChunkOf(committed)
	chunkStart := p.state.ChunkStart(chunk)
	if chunkStart < first {
		// Retention or DeleteRecords removed the head of the chunk: it is
		// carried (see replayable), from the first retained offset on.
		p.log.Info().Int64("chunk_start", chunkStart).Int64("first_offset", first).
			Msg("log head deleted inside the resume chunk; continuing it from stored rows")
		chunkStart = first
	}
	warmStart := max(p.state.ChunkStart(chunk-1), first, 0)
	p.warmUntil = chunkStart
	p.contiguousFrom = warmStart
	p.state.Begin(chunk - 1)
	if warmStart >= chunkStart {
		p.state.Begin(chunk)
	}
	p.log.Info().Int64("committed", committed).Int64("chunk", chunk).Int64("read_from", warmStart).
		Int64("aggregate_from", chunkStart).Msg("partition assigned")
	return warmStart
}

// gap records that the log no longer holds the offsets [from, to): chunks
// whose rows or dedup horizon include them can no longer be recomputed from
// the log.
func (p *processor) gap(from, to int64) {
	p.met.gapOffsets.Add(float64(to - from))
	p.log.Warn().Int64("from", from).Int64("to", to).
		Msg("offsets missing from the log (retention, DeleteRecords or compaction); affected chunks continue from stored rows")
	p.contiguousFrom = max(p.contiguousFrom, to)
}

// replayable reports whether chunk can be recomputed from the log: every
// offset from the start of the chunk before it (whose ids and event times
// decide dedup and lateness) up to now was read.
func (p *processor) replayable(chunk int64) bool {
	return p.contiguousFrom <= max(p.state.ChunkStart(chunk-1), 0)
}

// handle feeds one record: the flush policy first (chunk end, carry, segment
// cut), then decode and aggregate, then a flush if the batch is full. It
// returns an error only when ctx ended while a write it needed was failing.
func (p *processor) handle(ctx context.Context, r *partitionlog.Record) error {
	if IsSeal(r.Key, r.Value) {
		return p.seal(ctx, r.Offset)
	}
	if r.Offset < p.warmUntil {
		if p.dec.Decode(r.Value, r.Time, &p.ev) == nil {
			p.state.Warm(&p.ev)
		}
		return nil
	}
	if err := p.position(ctx, r.Offset); err != nil {
		return err
	}
	met := p.met
	met.consumed.Inc()
	met.bytes.Add(float64(len(r.Value)))
	if err := p.dec.Decode(r.Value, r.Time, &p.ev); err != nil {
		rej, ok := events.AsReject(err)
		if !ok { // the decoder promises RejectError; keep the promise visible
			rej = &events.RejectError{Reason: events.ReasonInvalidJSON, Detail: err.Error()}
		}
		met.rejected.WithLabelValues(string(rej.Reason)).Inc()
		p.state.Reject(r.Offset, rej, r.Time, r.Value)
		if p.dead != nil {
			p.dead.add(r.Offset, r, rej)
		}
	} else {
		switch p.state.Add(r.Offset, &p.ev) {
		case aggregate.Duplicate:
			met.duplicates.Inc()
		case aggregate.CountedLate:
			met.accepted.Inc()
			met.late.Inc()
		default:
			met.accepted.Inc()
		}
	}
	if p.state.BatchSize() >= p.agg.MaxBatchRows || (p.dead != nil && p.dead.bytes() >= maxDeadLetterBytes) {
		return p.flushNow(ctx)
	}
	return nil
}

// position gets the state ready for the record at offset: a completed chunk
// is written and the next one begun (carried if the log cannot reproduce
// it), a chunk that just lost replayability is written and carried, and a
// full segment is written and a new one begun.
func (p *processor) position(ctx context.Context, offset int64) error {
	if chunk := p.state.ChunkOf(offset); chunk != p.state.Chunk() {
		// The chunk is complete: make it durable before its state is dropped.
		if p.state.Pending() {
			p.chunkDone = true
			if err := p.flushNow(ctx); err != nil {
				return err
			}
		}
		p.state.Begin(chunk)
		if !p.replayable(chunk) {
			if err := p.carry(ctx); err != nil {
				return err
			}
		}
	} else if !p.state.Carrying() && !p.replayable(chunk) {
		// A gap inside the chunk: records this chunk's rows may already
		// include are gone. Write what is pending, then continue from what
		// is stored instead of overwriting it with a shorter aggregate.
		if p.state.Pending() {
			if err := p.flushNow(ctx); err != nil {
				return err
			}
		}
		if err := p.carry(ctx); err != nil {
			return err
		}
	}
	if p.state.NeedsSegment(offset) {
		// The group cap is reached: write the segment, then start a new one.
		// Where this happens depends only on the chunk's records, so a
		// replay cuts at the same offset.
		if err := p.flushNow(ctx); err != nil {
			return err
		}
		p.state.BeginSegment(offset)
		p.met.segments.Inc()
	}
	return nil
}

// seal takes a seal record: the pending state is written, then the current
// segment ends at offset (aggregate.ChunkState.Seal). A seal in the chunk
// read only to warm the dedup set was taken when that chunk was written.
func (p *processor) seal(ctx context.Context, offset int64) error {
	if offset < p.warmUntil {
		return nil
	}
	if err := p.position(ctx, offset); err != nil {
		return err
	}
	p.met.sealsRead.Inc()
	for p.pending() { // a batch kept from a failed write, then the state
		if err := p.flushNow(ctx); err != nil {
			return err
		}
	}
	p.state.Seal(offset)
	return nil
}

// carry continues the current chunk from the rows ClickHouse holds of it.
func (p *processor) carry(ctx context.Context) error {
	chunk := p.state.Chunk()
	stored, err := p.store.ReadChunk(ctx, chunk)
	if err != nil {
		return fmt.Errorf("read stored chunk %d: %w", chunk, err)
	}
	p.state.Carry(stored)
	p.met.carried.Inc()
	p.log.Info().Int64("chunk", chunk).Int64("segment", stored.Segment).
		Int64("stored_through", stored.Progress.LastOffset).Int("groups", p.state.Groups()).
		Msg("chunk not reproducible from the log; continuing from stored rows")
	return nil
}

// pending reports whether anything consumed is not durable yet.
func (p *processor) pending() bool { return p.unwritten != nil || p.state.Pending() }

// flush makes the pending state durable through the writer chain, then
// hands the batch to the commit step. A batch whose write did not complete
// is kept and written again by the next flush. It is the timed flush (the
// ticker, shutdown): its write may linger for other partitions' writes.
func (p *processor) flush(ctx context.Context) error { return p.write(ctx, true) }

// flushNow is the flush the records force (a chunk ends, the batch is full,
// a segment or a carry begins): the partition is reading a backlog and
// stands still until the write is durable, so the write does not linger.
func (p *processor) flushNow(ctx context.Context) error { return p.write(ctx, false) }

func (p *processor) write(ctx context.Context, linger bool) error {
	if p.unwritten == nil {
		p.unwritten = p.state.Batch(p.topic, p.part)
	}
	b := p.unwritten
	if err := p.store.Write(ctx, b, linger); err != nil {
		return err
	}
	p.unwritten = nil
	done := p.chunkDone
	p.chunkDone = false
	p.durable(ctx, b, done)
	return nil
}
