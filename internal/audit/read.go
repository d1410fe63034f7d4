package audit

import (
	"context"
	"fmt"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
)

// GroupTotals is a rollup summed over every window and the dimensions not
// named here. LatencyMsMax is a max, every other measure a sum.
type GroupTotals struct {
	WorkspaceID string
	Model       string
	Measures    aggregate.Measures
}

// TotalsByWorkspaceModel reads usage_<window> for topic summed per workspace
// and model, as an analyst's plain sum() would; used by the demo and the
// end-to-end tests to compare against a generator's ground truth. A window
// the reader was not configured with fails with ErrUnknownWindow before
// anything is sent.
func (r *Reader) TotalsByWorkspaceModel(ctx context.Context, window, topic string) ([]GroupTotals, error) {
	if !r.windows[window] {
		return nil, fmt.Errorf("read usage_<window> totals: window %q: %w", window, ErrUnknownWindow)
	}
	ctx, cancel := r.conn.StatementContext(ctx)
	defer cancel()
	q := `SELECT workspace_id, model, sum(requests), sum(errors), sum(input_tokens), sum(input_text_tokens),
		sum(input_image_tokens), sum(input_cached_tokens), sum(output_tokens), sum(total_tokens),
		sum(latency_ms_sum), max(latency_ms_max), sum(inconsistent_events), sum(late_events)
	FROM ` + r.database + `.usage_` + window + ` WHERE topic = ? GROUP BY workspace_id, model ORDER BY workspace_id, model`
	rows, err := r.conn.Query(ctx, q, topic)
	if err != nil {
		return nil, fmt.Errorf("read usage_%s totals: %w", window, err)
	}
	defer rows.Close()
	var out []GroupTotals
	for rows.Next() {
		var g GroupTotals
		m := &g.Measures
		if err := rows.Scan(&g.WorkspaceID, &g.Model, &m.Requests, &m.Errors, &m.InputTokens, &m.InputTextTokens,
			&m.InputImageTokens, &m.InputCachedTokens, &m.OutputTokens, &m.TotalTokens,
			&m.LatencyMsSum, &m.LatencyMsMax, &m.InconsistentEvents, &m.LateEvents); err != nil {
			return nil, fmt.Errorf("scan usage_%s totals: %w", window, err)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read usage_%s totals: %w", window, err)
	}
	return out, nil
}

// PartitionProgress sums usage_chunk_progress over one partition's chunks.
type PartitionProgress struct {
	Partition   int32
	FirstOffset int64 // first offset of the earliest chunk written
	NextOffset  int64 // one past the last offset written
	Accepted    uint64
	Rejected    uint64
	Duplicates  uint64
}

// Balanced reports whether every offset written is accounted for exactly
// once as accepted, rejected or duplicate. It holds on every log without
// gaps; compaction and transaction markers leave gaps that make it false.
func (p PartitionProgress) Balanced() bool {
	return p.Accepted+p.Rejected+p.Duplicates == uint64(p.NextOffset-p.FirstOffset)
}

// Progress reads how far each partition of topic has been written.
func (r *Reader) Progress(ctx context.Context, topic string) ([]PartitionProgress, error) {
	ctx, cancel := r.conn.StatementContext(ctx)
	defer cancel()
	q := "SELECT `partition`, min(first_offset), max(last_offset) + 1, sum(accepted), sum(rejected), sum(duplicates) FROM " +
		r.database + ".usage_chunk_progress WHERE topic = ? GROUP BY `partition` ORDER BY `partition`"
	rows, err := r.conn.Query(ctx, q, topic)
	if err != nil {
		return nil, fmt.Errorf("read usage_chunk_progress: %w", err)
	}
	defer rows.Close()
	var out []PartitionProgress
	for rows.Next() {
		var p PartitionProgress
		if err := rows.Scan(&p.Partition, &p.FirstOffset, &p.NextOffset, &p.Accepted, &p.Rejected, &p.Duplicates); err != nil {
			return nil, fmt.Errorf("scan usage_chunk_progress: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read usage_chunk_progress: %w", err)
	}
	return out, nil
}

// RejectedCount counts the rows of usage_rejected for topic: one per rejected message.
func (r *Reader) RejectedCount(ctx context.Context, topic string) (uint64, error) {
	ctx, cancel := r.conn.StatementContext(ctx)
	defer cancel()
	var n uint64
	if err := r.conn.QueryRow(ctx, "SELECT count() FROM "+r.database+".usage_rejected WHERE topic = ?", topic).Scan(&n); err != nil {
		return 0, fmt.Errorf("count usage_rejected: %w", err)
	}
	return n, nil
}
