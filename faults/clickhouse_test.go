//go:build faults

package faults

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// chReader is the test's own read connection to ClickHouse (direct, never
// through a proxy), for the queries internal/audit does not offer.
type chReader struct {
	conn driver.Conn
	db   string
}

func openReader(addr, db string) (*chReader, error) {
	c, err := clickhouse.Open(&clickhouse.Options{
		Protocol:    clickhouse.Native,
		Addr:        []string{addr},
		Auth:        clickhouse.Auth{Database: db, Username: "default"},
		DialTimeout: 5 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	return &chReader{conn: c, db: db}, nil
}

func (r *chReader) close() { _ = r.conn.Close() }

// hasColumn reports whether the view or table has the column.
func (r *chReader) hasColumn(ctx context.Context, table, column string) (bool, error) {
	var n uint64
	err := r.conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?",
		r.db, table, column).Scan(&n)
	return n > 0, err
}

// groups reads usage_<window> for topic per window start and full dimension
// set, as an analyst's plain sum() would.
func (r *chReader) groups(ctx context.Context, window, topic string) (map[groupKey]measures, error) {
	q := fmt.Sprintf(`SELECT toUnixTimestamp(window_start), workspace_id, project_id, api_key_id, provider, model, endpoint,
		sum(requests), sum(errors), sum(input_tokens), sum(input_text_tokens), sum(input_image_tokens),
		sum(input_cached_tokens), sum(output_tokens), sum(total_tokens), sum(latency_ms_sum), max(latency_ms_max),
		sum(inconsistent_events), sum(late_events)
	FROM %s.usage_%s WHERE topic = ?
	GROUP BY window_start, workspace_id, project_id, api_key_id, provider, model, endpoint`, r.db, window)
	rows, err := r.conn.Query(ctx, q, topic)
	if err != nil {
		return nil, fmt.Errorf("read usage_%s groups: %w", window, err)
	}
	defer rows.Close()
	out := map[groupKey]measures{}
	for rows.Next() {
		var k groupKey
		var ws uint32
		var m measures
		if err := rows.Scan(&ws, &k.workspace, &k.project, &k.apiKey, &k.provider, &k.model, &k.endpoint,
			&m.Requests, &m.Errors, &m.InputTokens, &m.InputTextTokens, &m.InputImageTokens, &m.InputCachedTokens,
			&m.OutputTokens, &m.TotalTokens, &m.LatencyMsSum, &m.LatencyMsMax, &m.Inconsistent, &m.Late); err != nil {
			return nil, fmt.Errorf("scan usage_%s groups: %w", window, err)
		}
		k.windowStart = int64(ws)
		out[k] = m
	}
	return out, rows.Err()
}

// rejected reads usage_rejected for topic: reason per (partition, offset),
// and how many rows there are (a second row for one offset would show).
func (r *chReader) rejected(ctx context.Context, topic string) (map[offsetKey]string, int, error) {
	rows, err := r.conn.Query(ctx, "SELECT `partition`, `offset`, reason FROM "+r.db+".usage_rejected WHERE topic = ?", topic)
	if err != nil {
		return nil, 0, fmt.Errorf("read usage_rejected: %w", err)
	}
	defer rows.Close()
	out := map[offsetKey]string{}
	n := 0
	for rows.Next() {
		var p int32
		var off int64
		var reason string
		if err := rows.Scan(&p, &off, &reason); err != nil {
			return nil, 0, err
		}
		out[offsetKey{int(p), off}] = reason
		n++
	}
	return out, n, rows.Err()
}

// chunkProgress is usage_chunk_progress summed per partition.
type chunkProgress struct {
	next                                 int64 // max(last_offset) + 1
	accepted, rejected, duplicates, late uint64
	seals                                uint64
	chunks                               uint64
	offsets                              int64 // sum of last_offset - first_offset + 1
}

func (r *chReader) progress(ctx context.Context, topic string) (map[int]chunkProgress, error) {
	q := "SELECT `partition`, max(last_offset) + 1, sum(accepted), sum(rejected), sum(duplicates), sum(late), sum(seals), " +
		"count(), sum(last_offset - first_offset + 1) FROM " + r.db + ".usage_chunk_progress WHERE topic = ? GROUP BY `partition`"
	rows, err := r.conn.Query(ctx, q, topic)
	if err != nil {
		return nil, fmt.Errorf("read usage_chunk_progress: %w", err)
	}
	defer rows.Close()
	out := map[int]chunkProgress{}
	for rows.Next() {
		var p int32
		var c chunkProgress
		if err := rows.Scan(&p, &c.next, &c.accepted, &c.rejected, &c.duplicates, &c.late, &c.seals, &c.chunks, &c.offsets); err != nil {
			return nil, err
		}
		out[int(p)] = c
	}
	return out, rows.Err()
}
