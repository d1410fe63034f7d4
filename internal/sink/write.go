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
		"max_event_time, watermark, written_at"
	progressColumns = "topic, `partition`, closed_through, max_event_time, committed_offset, idle, advanced_at"
)

// Write inserts one batch: the rows of each window table with rows, then the
// rejected messages if any, and always one usage_chunks progress row, last,
// so that progress never runs ahead of the rows it describes. A table's rows
// go in one INSERT unless they span more than maxMonthsPerInsert months;
// then in several, in ascending month order, each spanning at most that many
// (see splitByMonth). Every row carries version b.Version(); written_at and
// rejected_at are Config.Now.
//
// Write is not atomic across tables. A failure leaves some tables written,
// which is harmless: the caller retries the same batch (or a longer prefix),
// and the FINAL views then show each group once. Write does not keep b.
func (s *Sink) Write(ctx context.Context, b *aggregate.Batch) error {
	writtenAt := utcSeconds(s.cfg.Now().Unix())
	for i := range b.Windows {
		wr := &b.Windows[i]
		if len(wr.Rows) == 0 {
			continue
		}
		if err := s.writeRollup(ctx, b, wr, writtenAt); err != nil {
			return fmt.Errorf("insert usage_rollup_%s (topic %s partition %d chunk %d): %w",
				wr.Window.Name, b.Topic, b.Partition, b.Chunk, err)
		}
	}
	if len(b.Rejected) > 0 {
		if err := s.writeRejected(ctx, b, writtenAt); err != nil {
			return fmt.Errorf("insert usage_rejected_log (topic %s partition %d chunk %d): %w",
				b.Topic, b.Partition, b.Chunk, err)
		}
	}
	if err := s.writeProgress(ctx, b, writtenAt); err != nil {
		return fmt.Errorf("insert usage_chunks (topic %s partition %d chunk %d): %w",
			b.Topic, b.Partition, b.Chunk, err)
	}
	return nil
}

// insert prepares query, lets fill append rows and sends them, all within
// the statement timeout.
func (s *Sink) insert(ctx context.Context, query string, fill func(batch) error) error {
	ctx, cancel := s.conn.StatementContext(ctx)
	defer cancel()
	b, err := s.conn.PrepareBatch(ctx, query)
	if err != nil {
		return err
	}
	// Close ends the INSERT with no rows if fill fails; after Send it is a no-op.
	defer b.Close()
	if err := fill(b); err != nil {
		return err
	}
	return b.Send()
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

func (s *Sink) writeRollup(ctx context.Context, b *aggregate.Batch, wr *aggregate.WindowRows, writtenAt int64) error {
	query, ok := s.windows[wr.Window.Name]
	if !ok {
		return fmt.Errorf("window %s is not configured in the sink (ROLLUP_WINDOWS)", wr.Window.Name)
	}
	buf, _ := s.rollupBufs.Get().(*rollupBuffers)
	if buf == nil {
		buf = new(rollupBuffers)
	}
	defer func() {
		buf.release()
		s.rollupBufs.Put(buf)
	}()
	for i := range wr.Rows {
		buf.months = append(buf.months, monthIndex(wr.Rows[i].WindowStart))
	}
	send := func() error {
		return s.insert(ctx, query, func(ins batch) error {
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
		for i := range wr.Rows {
			buf.add(b, &wr.Rows[i], writtenAt)
		}
		return send()
	}
	for _, g := range groups {
		buf.reset()
		for _, i := range g {
			buf.add(b, &wr.Rows[i], writtenAt)
		}
		if err := send(); err != nil {
			return fmt.Errorf("months %s to %s: %w", monthName(buf.months[g[0]]), monthName(buf.months[g[len(g)-1]]), err)
		}
	}
	return nil
}

func (s *Sink) writeRejected(ctx context.Context, b *aggregate.Batch, rejectedAt int64) error {
	query := "INSERT INTO " + s.database + ".usage_rejected_log (" + rejectedColumns + ")"
	// record_time decides the partition; it must be the same on every
	// replay, hence the record's own timestamp, clamped, not the clock.
	recordTimes := make([]int64, len(b.Rejected))
	months := make([]int32, len(b.Rejected))
	for i := range b.Rejected {
		if rt := b.Rejected[i].RecordTime; !rt.IsZero() {
			recordTimes[i] = utcSeconds(rt.Unix())
		}
		months[i] = monthIndex(recordTimes[i])
	}
	send := func(rows []int) error {
		return s.insert(ctx, query, func(ins batch) error {
			for _, i := range rows {
				r := &b.Rejected[i]
				payload := r.Payload
				if len(payload) > aggregate.MaxRejectedPayload {
					payload = payload[:aggregate.MaxRejectedPayload]
				}
				if err := ins.Append(b.Topic, b.Partition, r.Offset, r.Reason, r.Field, r.Detail,
					recordTimes[i], uint64(max(r.Size, 0)), payload, rejectedAt); err != nil {
					return fmt.Errorf("append offset %d: %w", r.Offset, err)
				}
			}
			return nil
		})
	}
	groups := splitByMonth(months, maxMonthsPerInsert)
	if groups == nil {
		all := make([]int, len(b.Rejected))
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

func (s *Sink) writeProgress(ctx context.Context, b *aggregate.Batch, writtenAt int64) error {
	query := "INSERT INTO " + s.database + ".usage_chunks (" + chunkColumns + ")"
	p := &b.Progress
	return s.insert(ctx, query, func(ins batch) error {
		return ins.Append(b.Topic, b.Partition, b.Chunk, p.FirstOffset, p.LastOffset,
			p.Accepted, p.Rejected, p.Duplicates, p.Late, utcSeconds(p.MaxEventTimeMs/1000),
			utcSeconds(p.WatermarkMs/1000), writtenAt)
	})
}

// WriteFinality records that f.Partition's windows are complete through
// f.ClosedThroughMs. The caller writes it only after the rows it covers are
// durable, and only when it advanced; the table keeps the largest value.
func (s *Sink) WriteFinality(ctx context.Context, f aggregate.Finality) error {
	query := "INSERT INTO " + s.database + ".usage_progress_log (" + progressColumns + ")"
	idle := uint8(0)
	if f.Idle {
		idle = 1
	}
	err := s.insert(ctx, query, func(ins batch) error {
		return ins.Append(f.Topic, f.Partition, utcSeconds(f.ClosedThroughMs/1000), utcSeconds(f.MaxEventTimeMs/1000),
			f.CommittedOffset, idle, utcSeconds(s.cfg.Now().Unix()))
	})
	if err != nil {
		return fmt.Errorf("insert usage_progress_log (topic %s partition %d): %w", f.Topic, f.Partition, err)
	}
	return nil
}
