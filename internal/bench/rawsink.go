package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/usage-rollup/usage-rollup/internal/events"
)

// RawSink is the baseline: what generic Kafka-to-ClickHouse sinks do. Every
// event becomes one row of a MergeTree table, written in large batches, and
// the offsets are committed after each insert (at-least-once). Analysts then
// GROUP BY over the raw rows.
type RawSink struct {
	Brokers    []string
	Topic      string
	Group      string
	ClickHouse string
	Database   string
	// BatchRows is the most rows one insert carries.
	BatchRows int
}

// rawIdle is how long the sink waits for another message before it writes
// a partial batch; rawMaxAge bounds how long a batch stays open at all.
const (
	rawIdle   = 500 * time.Millisecond
	rawMaxAge = 2 * time.Second
)

// rawColumns are the raw table's columns, in rawBuffers.columns order.
var rawColumns = []string{"ts", "id", "workspace_id", "project_id", "api_key_id", "provider", "model", "endpoint",
	"status_code", "latency_ms", "input_tokens", "input_text_tokens", "input_image_tokens", "input_cached_tokens",
	"output_tokens", "total_tokens"}

func (s RawSink) table() string { return quote(s.Database) + ".raw_events" }

// Setup creates the database and the table. The sort key matches the
// analyst query's GROUP BY: the baseline's best case.
func (s RawSink) Setup(ctx context.Context, ch *ClickHouse) error {
	return ch.ExecAll(ctx,
		"CREATE DATABASE "+quote(s.Database),
		"CREATE TABLE "+s.table()+" (ts DateTime, id String, workspace_id String, project_id String, "+
			"api_key_id String, provider String, model String, endpoint String, status_code Int32, latency_ms UInt64, "+
			"input_tokens UInt64, input_text_tokens UInt64, input_image_tokens UInt64, input_cached_tokens UInt64, "+
			"output_tokens UInt64, total_tokens UInt64)\n"+
			"ENGINE = MergeTree() PARTITION BY toYYYYMM(ts) ORDER BY (workspace_id, model, ts)")
}

// Windows says where the baseline's results are: one table serves every
// window; its groups are counted at each window's alignment.
func (s RawSink) Windows() []Window {
	t := s.table()
	analyst := "SELECT workspace_id, model, count(), sum(input_tokens), sum(output_tokens), sum(total_tokens)\n" +
		"FROM " + t + "\nGROUP BY workspace_id, model ORDER BY workspace_id, model"
	var out []Window
	for _, w := range engineWindows {
		out = append(out, Window{
			Name:    w.name,
			Rows:    "SELECT count() FROM " + t,
			Groups:  "SELECT count() FROM (SELECT DISTINCT " + w.align + "(ts), " + strings.Join(dimensions, ", ") + " FROM " + t + ")",
			Sums:    "SELECT count(), sum(total_tokens) FROM " + t,
			Analyst: analyst,
		})
	}
	return out
}

// Run consumes until ctx ends, then writes and commits what it holds.
// Messages the decoder rejects are skipped and counted in the log line at
// the end (the benchmark's stream has none).
func (s RawSink) Run(ctx context.Context) error {
	ch, err := OpenClickHouse(ctx, s.ClickHouse)
	if err != nil {
		return err
	}
	defer ch.Close()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: s.Brokers, Topic: s.Topic, GroupID: s.Group,
		StartOffset: kafka.FirstOffset,
		MinBytes:    1, MaxBytes: 16 << 20,
		// MaxWait bounds a fetch on a caught-up partition; the default 10s
		// would hold a partial batch that long.
		MaxWait: rawIdle,
	})
	defer r.Close()

	dec := events.NewDecoder(events.DefaultConfig())
	var ev events.Event
	buf := newRawBuffers(s.BatchRows)
	last := map[int]kafka.Message{} // newest message per partition in the batch
	var opened time.Time
	rejected := 0
	flush := func(ctx context.Context) error {
		if buf.len() == 0 {
			return nil
		}
		if err := ch.insert(ctx, "INSERT INTO "+s.table()+" ("+strings.Join(rawColumns, ", ")+")", buf.columns()); err != nil {
			return err
		}
		msgs := make([]kafka.Message, 0, len(last))
		for _, m := range last {
			msgs = append(msgs, m)
		}
		if err := r.CommitMessages(ctx, msgs...); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		buf.reset()
		clear(last)
		return nil
	}
	for {
		fctx, cancel := context.WithTimeout(ctx, rawIdle)
		m, err := r.FetchMessage(fctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			// Shutting down: the final write gets its own deadline.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
			defer cancel()
			fmt.Printf("raw sink: stopping; %d rejected messages\n", rejected)
			return flush(fctx)
		case errors.Is(err, context.DeadlineExceeded):
			if err := flush(ctx); err != nil {
				return err
			}
			continue
		case err != nil:
			return fmt.Errorf("fetch: %w", err)
		}
		if derr := dec.Decode(m.Value, m.Time, &ev); derr != nil {
			rejected++
		} else {
			if buf.len() == 0 {
				opened = time.Now()
			}
			buf.add(&ev)
		}
		last[m.Partition] = m
		if buf.len() >= s.BatchRows || (buf.len() > 0 && time.Since(opened) >= rawMaxAge) {
			if err := flush(ctx); err != nil {
				return err
			}
		}
	}
}

// rawBuffers are the columns of one insert, reused across batches.
type rawBuffers struct {
	ts     []int64
	strs   [7][]string // id and the six dimensions
	status []int32
	nums   [7][]uint64 // latency and the six token counts
}

func newRawBuffers(n int) *rawBuffers {
	b := &rawBuffers{ts: make([]int64, 0, n), status: make([]int32, 0, n)}
	for i := range b.strs {
		b.strs[i] = make([]string, 0, n)
	}
	for i := range b.nums {
		b.nums[i] = make([]uint64, 0, n)
	}
	return b
}

func (b *rawBuffers) len() int { return len(b.ts) }

func (b *rawBuffers) add(e *events.Event) {
	b.ts = append(b.ts, e.TimeMs/1000)
	for i, v := range [7][]byte{e.ID, e.WorkspaceID, e.ProjectID, e.APIKeyID, e.Provider, e.Model, e.Endpoint} {
		b.strs[i] = append(b.strs[i], string(v))
	}
	b.status = append(b.status, e.StatusCode)
	u := &e.Usage
	for i, v := range [7]uint64{e.LatencyMs, u.InputTokens, u.InputTextTokens, u.InputImageTokens,
		u.InputCachedTokens, u.OutputTokens, u.TotalTokens} {
		b.nums[i] = append(b.nums[i], v)
	}
}

func (b *rawBuffers) reset() {
	b.ts, b.status = b.ts[:0], b.status[:0]
	for i := range b.strs {
		b.strs[i] = b.strs[i][:0]
	}
	for i := range b.nums {
		b.nums[i] = b.nums[i][:0]
	}
}

// columns returns the buffers in rawColumns order.
func (b *rawBuffers) columns() []any {
	cols := []any{b.ts}
	for _, s := range b.strs {
		cols = append(cols, s)
	}
	cols = append(cols, b.status)
	for _, n := range b.nums {
		cols = append(cols, n)
	}
	return cols
}

// insert sends one columnar batch. The INSERT names its columns, which
// clickhouse-go needs against 18.16.
func (c *ClickHouse) insert(ctx context.Context, query string, cols []any) error {
	ctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	b, err := c.conn.PrepareBatch(ctx, query)
	if err != nil {
		return fmt.Errorf("prepare %s: %w", query, err)
	}
	for i, col := range cols {
		if err := b.Column(i).Append(col); err != nil {
			_ = b.Abort()
			return fmt.Errorf("append column %d: %w", i, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("send %s: %w", query, err)
	}
	return nil
}
