package sink

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
)

// batch is the driver's prepared INSERT.
type batch = driver.Batch

// Column lists of the INSERTs. Old servers (18.16) hang on an INSERT without
// one, and naming them keeps the positional appends below tied to the names.
const (
	rollupColumns = "window_start, workspace_id, project_id, api_key_id, provider, model, endpoint, " +
		"topic, `partition`, chunk, segment, version, " +
		"requests, errors, input_tokens, input_text_tokens, input_image_tokens, input_cached_tokens, " +
		"output_tokens, total_tokens, latency_ms_sum, latency_ms_max, inconsistent_events, late_events, written_at"
	rejectedColumns = "topic, `partition`, `offset`, reason, field, detail, record_time, size, payload, rejected_at"
	chunkColumns    = "topic, `partition`, chunk, first_offset, last_offset, accepted, rejected, duplicates, late, " +
		"max_event_time, watermark, written_at, seals, open_segment"
	progressColumns = "topic, `partition`, closed_through, max_event_time, committed_offset, idle, advanced_at"
)

// Write inserts one batch; see WriteBatches.
func (s *Sink) Write(ctx context.Context, b *aggregate.Batch) error {
	return s.WriteBatches(ctx, []*aggregate.Batch{b})
}

// WriteBatches inserts batches, of any partitions, together: one INSERT per
// window table with the rows of all of them, then one for their rejected
// messages if any, and always one for their usage_chunks progress rows, last,
// so that progress never runs ahead of the rows it describes. So the number
// of INSERTs (and of parts ClickHouse creates) depends on how often the
// caller writes, not on how many partitions it writes for. A table's rows go
// in one INSERT unless they span more than maxMonthsPerInsert months; then in
// several, in ascending month order, each spanning at most that many (see
// splitByMonth). Every row carries its batch's version; written_at and
// rejected_at are Config.Now.
//
// WriteBatches is not atomic across tables, nor across the batches of one
// INSERT's parts. A failure leaves some rows written, which is harmless: the
// callers retry the same batches (or longer prefixes), and the FINAL views
// then show each group once. It does not keep the batches.
func (s *Sink) WriteBatches(ctx context.Context, bs []*aggregate.Batch) error {
	if len(bs) == 0 {
		return nil
	}
	writtenAt := utcSeconds(s.cfg.Now().Unix())
	for w := range bs[0].Windows {
		if err := s.writeRollup(ctx, bs, w, writtenAt); err != nil {
			return fmt.Errorf("insert usage_rollup_%s (%s): %w", bs[0].Windows[w].Window.Name, describe(bs), err)
		}
	}
	if err := s.writeRejected(ctx, bs, writtenAt); err != nil {
		return fmt.Errorf("insert usage_rejected_log (%s): %w", describe(bs), err)
	}
	if err := s.writeProgress(ctx, bs, writtenAt); err != nil {
		return fmt.Errorf("insert usage_chunks (%s): %w", describe(bs), err)
	}
	return nil
}

// describe names the batches of a write for its error messages.
func describe(bs []*aggregate.Batch) string {
	b := bs[0]
	if len(bs) == 1 {
		return fmt.Sprintf("topic %s partition %d chunk %d", b.Topic, b.Partition, b.Chunk)
	}
	return fmt.Sprintf("topic %s, %d batches from partition %d chunk %d on", b.Topic, len(bs), b.Partition, b.Chunk)
}

// rollupBuffers holds one batch's rows column by column, so each column is
// appended with one call and no per-value boxing.
type rollupBuffers struct {
	windowStart []int64
	dims        [6][]string
	topic       []string
	partition   []int32
	chunk       []int64
	segment     []int64
	version     []uint64
	measures    [12][]uint64
	writtenAt   []int64
	// months holds the partition month of each row of the batch being
	// written (not only of those in the columns above), for splitByMonth.
	months []int32
}

// reset empties the buffers, dropping string references so a pooled buffer
// does not pin the previous batch's memory.
func (r *rollupBuffers) reset() {
	r.windowStart = r.windowStart[:0]
	for i := range r.dims {
		clear(r.dims[i])
		r.dims[i] = r.dims[i][:0]
	}
	clear(r.topic)
	r.topic, r.partition, r.chunk, r.segment, r.version = r.topic[:0], r.partition[:0], r.chunk[:0], r.segment[:0], r.version[:0]
	for i := range r.measures {
		r.measures[i] = r.measures[i][:0]
	}
	r.writtenAt = r.writtenAt[:0]
}

// release empties the buffers for the pool, months included.
func (r *rollupBuffers) release() {
	r.reset()
	r.months = r.months[:0]
}

func (r *rollupBuffers) add(b *aggregate.Batch, row *aggregate.Row, writtenAt int64) {
	r.windowStart = append(r.windowStart, utcSeconds(row.WindowStart))
	d := &row.Dims
	for i, v := range [6]string{d.WorkspaceID, d.ProjectID, d.APIKeyID, d.Provider, d.Model, d.Endpoint} {
		r.dims[i] = append(r.dims[i], v)
	}
	r.topic = append(r.topic, b.Topic)
	r.partition = append(r.partition, b.Partition)
	r.chunk = append(r.chunk, b.Chunk)
	r.segment = append(r.segment, b.Segment)
	r.version = append(r.version, b.Version())
	m := &row.Measures
	for i, v := range [12]uint64{
		m.Requests, m.Errors, m.InputTokens, m.InputTextTokens, m.InputImageTokens, m.InputCachedTokens,
		m.OutputTokens, m.TotalTokens, m.LatencyMsSum, m.LatencyMsMax, m.InconsistentEvents, m.LateEvents,
	} {
		r.measures[i] = append(r.measures[i], v)
	}
	r.writtenAt = append(r.writtenAt, writtenAt)
}

// columns returns the buffers in rollupColumns order.
func (r *rollupBuffers) columns() []any {
	cols := make([]any, 0, 25)
	cols = append(cols, r.windowStart)
	for _, d := range r.dims {
		cols = append(cols, d)
	}
	cols = append(cols, r.topic, r.partition, r.chunk, r.segment, r.version)
	for _, m := range r.measures {
		cols = append(cols, m)
	}
	return append(cols, r.writtenAt)
}

func (s *Sink) writeRollup(ctx context.Context, bs []*aggregate.Batch, w int, writtenAt int64) error {
	name := bs[0].Windows[w].Window.Name
	query, ok := s.windows[name]
	if !ok {
		return fmt.Errorf("window %s is not configured in the sink (ROLLUP_WINDOWS)", name)
	}
	// Every row of the window, over all batches, as (batch, row) positions.
	type at struct{ b, r int32 }
	var rows []at
	for bi, b := range bs {
		for ri := range b.Windows[w].Rows {
			rows = append(rows, at{int32(bi), int32(ri)})
		}
	}
	if len(rows) == 0 {
		return nil
	}
	buf, _ := s.rollupBufs.Get().(*rollupBuffers)
	if buf == nil {
		buf = new(rollupBuffers)
	}
	defer func() {
		buf.release()
		s.rollupBufs.Put(buf)
	}()
	row := func(x at) *aggregate.Row { return &bs[x.b].Windows[w].Rows[x.r] }
	for _, x := range rows {
		buf.months = append(buf.months, monthIndex(row(x).WindowStart))
	}
	send := func() error {
		return s.conn.Insert(ctx, query, func(ins batch) error {
			for i, col := range buf.columns() {
				if err := ins.Column(i).Append(col); err != nil {
					return fmt.Errorf("append column %d: %w", i, err)
				}
			}
			return nil
		})
	}
	groups := splitByMonth(buf.months, maxMonthsPerInsert)
	if groups == nil {
		for _, x := range rows {
			buf.add(bs[x.b], row(x), writtenAt)
		}
		return send()
	}
	for _, g := range groups {
		buf.reset()
		for _, i := range g {
			buf.add(bs[rows[i].b], row(rows[i]), writtenAt)
		}
		if err := send(); err != nil {
			return fmt.Errorf("months %s to %s: %w", monthName(buf.months[g[0]]), monthName(buf.months[g[len(g)-1]]), err)
		}
	}
	return nil
}

func (s *Sink) writeRejected(ctx context.Context, bs []*aggregate.Batch, rejectedAt int64) error {
	type at struct{ b, r int }
	var rows []at
	for bi, b := range bs {
		for ri := range b.Rejected {
			rows = append(rows, at{bi, ri})
		}
	}
	if len(rows) == 0 {
		return nil
	}
	query := "INSERT INTO " + s.database + ".usage_rejected_log (" + rejectedColumns + ")"
	// record_time decides the partition; it must be the same on every
	// replay, hence the record's own timestamp, clamped, not the clock.
	recordTimes := make([]int64, len(rows))
	months := make([]int32, len(rows))
	for i, x := range rows {
		if rt := bs[x.b].Rejected[x.r].RecordTime; !rt.IsZero() {
			recordTimes[i] = utcSeconds(rt.Unix())
		}
		months[i] = monthIndex(recordTimes[i])
	}
	send := func(idx []int) error {
		return s.conn.Insert(ctx, query, func(ins batch) error {
			for _, i := range idx {
				b := bs[rows[i].b]
				r := &b.Rejected[rows[i].r]
				payload := r.Payload
				if len(payload) > aggregate.MaxRejectedPayload {
					payload = payload[:aggregate.MaxRejectedPayload]
				}
				if err := ins.Append(b.Topic, b.Partition, r.Offset, r.Reason, r.Field, r.Detail,
					recordTimes[i], uint64(max(r.Size, 0)), payload, rejectedAt); err != nil {
					return fmt.Errorf("append partition %d offset %d: %w", b.Partition, r.Offset, err)
				}
			}
			return nil
		})
	}
	groups := splitByMonth(months, maxMonthsPerInsert)
	if groups == nil {
		all := make([]int, len(rows))
		for i := range all {
			all[i] = i
		}
		return send(all)
	}
	for _, g := range groups {
		if err := send(g); err != nil {
			return fmt.Errorf("months %s to %s: %w", monthName(months[g[0]]), monthName(months[g[len(g)-1]]), err)
		}
	}
	return nil
}

func (s *Sink) writeProgress(ctx context.Context, bs []*aggregate.Batch, writtenAt int64) error {
	query := "INSERT INTO " + s.database + ".usage_chunks (" + chunkColumns + ")"
	return s.conn.Insert(ctx, query, func(ins batch) error {
		for _, b := range bs {
			p := &b.Progress
			if err := ins.Append(b.Topic, b.Partition, b.Chunk, p.FirstOffset, p.LastOffset,
				p.Accepted, p.Rejected, p.Duplicates, p.Late, utcSeconds(p.MaxEventTimeMs/1000),
				utcSeconds(p.WatermarkMs/1000), writtenAt, p.Seals, p.OpenSegment); err != nil {
				return err
			}
		}
		return nil
	})
}

// WriteFinality records one partition's finality; see WriteFinalities.
func (s *Sink) WriteFinality(ctx context.Context, f aggregate.Finality) error {
	return s.WriteFinalities(ctx, []aggregate.Finality{f})
}

// WriteFinalities records, in one INSERT, that each f.Partition's windows are
// complete through f.ClosedThroughMs. The caller writes one only after the
// rows it covers are durable, and only when it advanced; the table keeps the
// largest value.
func (s *Sink) WriteFinalities(ctx context.Context, fs []aggregate.Finality) error {
	if len(fs) == 0 {
		return nil
	}
	query := "INSERT INTO " + s.database + ".usage_progress_log (" + progressColumns + ")"
	advancedAt := utcSeconds(s.cfg.Now().Unix())
	err := s.conn.Insert(ctx, query, func(ins batch) error {
		for _, f := range fs {
			idle := uint8(0)
			if f.Idle {
				idle = 1
			}
			if err := ins.Append(f.Topic, f.Partition, utcSeconds(f.ClosedThroughMs/1000), utcSeconds(f.MaxEventTimeMs/1000),
				f.CommittedOffset, idle, advancedAt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("insert usage_progress_log (topic %s, %d partitions): %w", fs[0].Topic, len(fs), err)
	}
	return nil
}
