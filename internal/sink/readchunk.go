package sink

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
)

// ReadChunk reads back what is stored of one chunk of a partition: the rows
// of its newest segment in every configured window table, as FINAL shows
// them, and its usage_chunks progress row. The consumer calls it when it
// resumes a chunk that the log can no longer reproduce in full (retention
// deleted its head), to continue from what is stored rather than overwrite it
// with the aggregate of a shorter range.
//
// Segment is the largest segment with rows in any window table, -1 if none;
// Windows[i] holds that segment's rows in the table of the sink's i-th
// window (Config.Windows order), ordered by window and dimensions, each with
// its version; Progress.LastOffset is -1 when the chunk has no progress row.
// Times come back at the seconds resolution they are stored with:
// Progress.MaxEventTimeMs and Progress.WatermarkMs are whole seconds * 1000.
//
// Cost: the window tables are ORDER BY (window_start, dimensions, topic,
// partition, chunk, segment), so a filter on the chunk cannot use the primary
// key or the month partitioning: each window table is scanned in full, twice,
// but only its narrow topic, partition and chunk columns (PREWHERE); the
// wide columns are read only for the granules that match. That is fine for a
// call made once per such chunk, never per batch. usage_chunks is keyed by the
// chunk and costs a primary-key lookup.
func (s *Sink) ReadChunk(ctx context.Context, topic string, partition int32, chunk int64) (*aggregate.StoredChunk, error) {
	out := &aggregate.StoredChunk{Segment: -1, Windows: make([][]aggregate.StoredRow, len(s.cfg.Windows))}
	segment, err := s.chunkSegment(ctx, topic, partition, chunk)
	if err != nil {
		return nil, fmt.Errorf("read chunk %d of topic %s partition %d: %w", chunk, topic, partition, err)
	}
	out.Segment = segment
	if segment >= 0 {
		for i, w := range s.cfg.Windows {
			if out.Windows[i], err = s.segmentRows(ctx, w.Name, topic, partition, chunk, segment); err != nil {
				return nil, fmt.Errorf("read chunk %d of topic %s partition %d: usage_rollup_%s: %w",
					chunk, topic, partition, w.Name, err)
			}
		}
	}
	if out.Progress, err = s.chunkProgress(ctx, topic, partition, chunk); err != nil {
		return nil, fmt.Errorf("read chunk %d of topic %s partition %d: usage_chunks: %w", chunk, topic, partition, err)
	}
	return out, nil
}

// chunkFilter selects one chunk's rows before anything else is read. In
// segmentRows it runs before FINAL, which is right only because topic,
// partition, chunk and segment are key columns: every version of a row has
// the same values, so the filter keeps all versions of a key or none.
const chunkFilter = " PREWHERE topic = ? AND `partition` = ? AND chunk = ?"

// chunkSegment returns the largest segment of the chunk over all window
// tables, or -1. Segments are key columns, so no FINAL is needed.
func (s *Sink) chunkSegment(ctx context.Context, topic string, partition int32, chunk int64) (int64, error) {
	ctx, cancel := s.conn.StatementContext(ctx)
	defer cancel()
	parts := make([]string, 0, len(s.cfg.Windows))
	args := make([]any, 0, 3*len(s.cfg.Windows))
	for _, w := range s.cfg.Windows {
		// max() of no rows is 0, a real segment of chunk 0: count() tells them apart.
		parts = append(parts, "SELECT if(count() = 0, toInt64(-1), max(segment)) AS segment FROM "+
			s.database+".usage_rollup_"+w.Name+chunkFilter)
		args = append(args, topic, partition, chunk)
	}
	var segment int64
	query := "SELECT max(segment) FROM (" + strings.Join(parts, " UNION ALL ") + ")"
	if err := s.conn.QueryRow(ctx, query, args...).Scan(&segment); err != nil {
		return 0, fmt.Errorf("newest segment: %w", err)
	}
	return segment, nil
}

func (s *Sink) segmentRows(ctx context.Context, window, topic string, partition int32, chunk, segment int64) ([]aggregate.StoredRow, error) {
	ctx, cancel := s.conn.StatementContext(ctx)
	defer cancel()
	query := "SELECT window_start, workspace_id, project_id, api_key_id, provider, model, endpoint, version, " +
		"requests, errors, input_tokens, input_text_tokens, input_image_tokens, input_cached_tokens, " +
		"output_tokens, total_tokens, latency_ms_sum, latency_ms_max, inconsistent_events, late_events " +
		"FROM " + s.database + ".usage_rollup_" + window + " FINAL" + chunkFilter + " AND segment = ?" +
		" ORDER BY window_start, workspace_id, project_id, api_key_id, provider, model, endpoint"
	rows, err := s.conn.Query(ctx, query, topic, partition, chunk, segment)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []aggregate.StoredRow
	for rows.Next() {
		var (
			r           aggregate.StoredRow
			windowStart time.Time
			version     uint64
		)
		d, m := &r.Dims, &r.Measures
		if err := rows.Scan(&windowStart, &d.WorkspaceID, &d.ProjectID, &d.APIKeyID, &d.Provider, &d.Model, &d.Endpoint,
			&version, &m.Requests, &m.Errors, &m.InputTokens, &m.InputTextTokens, &m.InputImageTokens,
			&m.InputCachedTokens, &m.OutputTokens, &m.TotalTokens, &m.LatencyMsSum, &m.LatencyMsMax,
			&m.InconsistentEvents, &m.LateEvents); err != nil {
			return nil, err
		}
		r.WindowStart, r.Version = windowStart.Unix(), int64(version)
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s *Sink) chunkProgress(ctx context.Context, topic string, partition int32, chunk int64) (aggregate.Progress, error) {
	ctx, cancel := s.conn.StatementContext(ctx)
	defer cancel()
	query := "SELECT first_offset, last_offset, accepted, rejected, duplicates, late, max_event_time, watermark, " +
		"seals, open_segment FROM " +
		s.database + ".usage_chunks FINAL WHERE topic = ? AND `partition` = ? AND chunk = ?"
	rows, err := s.conn.Query(ctx, query, topic, partition, chunk)
	if err != nil {
		return aggregate.Progress{}, err
	}
	defer rows.Close()
	p := aggregate.Progress{LastOffset: -1}
	if rows.Next() {
		var maxEventTime, watermark time.Time
		if err := rows.Scan(&p.FirstOffset, &p.LastOffset, &p.Accepted, &p.Rejected, &p.Duplicates, &p.Late,
			&maxEventTime, &watermark, &p.Seals, &p.OpenSegment); err != nil {
			return aggregate.Progress{}, err
		}
		p.MaxEventTimeMs, p.WatermarkMs = maxEventTime.Unix()*1000, watermark.Unix()*1000
	}
	return p, rows.Err()
}
