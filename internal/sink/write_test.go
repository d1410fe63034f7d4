package sink

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/servicetest"
)

const testTopic = "usage-events"

// t0 is a window start in the middle of a month, 2024-05-14 12:00 UTC.
const t0 = 1715688000

func row(windowStart int64, workspace, model string, requests, tokens uint64) aggregate.Row {
	return aggregate.Row{
		WindowStart: windowStart,
		Dims: aggregate.Dims{
			WorkspaceID: workspace, ProjectID: "p1", APIKeyID: "k1",
			Provider: "openai", Model: model, Endpoint: "/v1/chat/completions",
		},
		Measures: aggregate.Measures{
			Requests: requests, InputTokens: tokens, InputTextTokens: tokens, OutputTokens: 2 * tokens,
			TotalTokens: 3 * tokens, LatencyMsSum: 100 * requests, LatencyMsMax: 100,
		},
	}
}

// rollup builds the batch of partition 3, chunk, prefix [first, last] with
// rows in the 1m window.
func rollup(chunk, first, last int64, rows ...aggregate.Row) *aggregate.Batch {
	var accepted uint64
	for _, r := range rows {
		accepted += r.Measures.Requests
	}
	return &aggregate.Batch{
		Topic: testTopic, Partition: 3, Chunk: chunk,
		Windows:  []aggregate.WindowRows{{Window: w1m, Rows: rows}},
		Progress: aggregate.Progress{FirstOffset: first, LastOffset: last, Accepted: accepted, MaxEventTimeMs: t0 * 1000},
	}
}

type sums struct{ rows, requests, totalTokens uint64 }

func viewSums(t *testing.T, s *Sink, view, where string) sums {
	t.Helper()
	var got sums
	query := "SELECT count(), sum(requests), sum(total_tokens) FROM " + s.database + "." + view + " WHERE " + where
	if err := s.conn.QueryRow(t.Context(), query).Scan(&got.rows, &got.requests, &got.totalTokens); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return got
}

// wantUint fails t unless query, one number, answers want.
func wantUint(t *testing.T, s *Sink, query string, want uint64) {
	t.Helper()
	if got := servicetest.QueryUint(t, s.conn, query); got != want {
		t.Errorf("%s = %d, want %d", query, got, want)
	}
}

func TestWriteTwiceSameSums(t *testing.T) {
	s := newTestSink(t)
	b := rollup(0, 0, 41, row(t0, "w1", "gpt-4o", 30, 10), row(t0+60, "w1", "gpt-4o", 12, 5))
	b.Windows = append(b.Windows, aggregate.WindowRows{Window: w1h, Rows: []aggregate.Row{row(t0, "w1", "gpt-4o", 42, 15)}})
	write(t, s, b)
	want := sums{rows: 2, requests: 42, totalTokens: 3 * 15}
	if got := viewSums(t, s, "usage_1m", "1"); got != want {
		t.Fatalf("after one write: usage_1m = %+v, want %+v", got, want)
	}
	write(t, s, b)
	if got := viewSums(t, s, "usage_1m", "1"); got != want {
		t.Errorf("after writing the batch twice: usage_1m = %+v, want %+v", got, want)
	}
	if got := viewSums(t, s, "usage_1h", "workspace_id = 'w1'"); got != (sums{1, 42, 45}) {
		t.Errorf("usage_1h = %+v, want one row of 42 requests", got)
	}
}

func TestShorterPrefixAfterLongerKeepsSums(t *testing.T) {
	s := newTestSink(t)
	long := rollup(0, 0, 99, row(t0, "w1", "gpt-4o", 10, 7), row(t0, "w2", "gpt-4o", 1, 1))
	short := rollup(0, 0, 50, row(t0, "w1", "gpt-4o", 4, 3))
	write(t, s, long)
	write(t, s, short) // a replica replaying an older prefix, or a retry arriving late

	// Filters on dimensions, on measures and none at all must all see only
	// the longest prefix: FINAL resolves versions before the outer WHERE.
	tests := []struct {
		where string
		want  sums
	}{
		{"1", sums{2, 11, 3 * 8}},
		{"workspace_id = 'w1'", sums{1, 10, 21}},
		{"requests < 5 AND workspace_id = 'w1'", sums{}},
		{"requests >= 10", sums{1, 10, 21}},
		{"window_start = toDateTime(" + strconv.FormatInt(t0, 10) + ", 'UTC') AND model = 'gpt-4o'", sums{2, 11, 24}},
	}
	for _, tt := range tests {
		if got := viewSums(t, s, "usage_1m", tt.where); got != tt.want {
			t.Errorf("usage_1m WHERE %s = %+v, want %+v", tt.where, got, tt.want)
		}
	}
}

func TestRowsOfDifferentChunksAddUp(t *testing.T) {
	s := newTestSink(t)
	// The same group in consecutive chunks and in another partition: disjoint
	// offset ranges, so their rows add up.
	write(t, s, rollup(0, 0, 999, row(t0, "w1", "gpt-4o", 5, 1)))
	write(t, s, rollup(1, 1000, 1500, row(t0, "w1", "gpt-4o", 7, 2)))
	other := rollup(0, 0, 10, row(t0, "w1", "gpt-4o", 11, 3))
	other.Partition = 4
	write(t, s, other)
	write(t, s, rollup(1, 1000, 1200, row(t0, "w1", "gpt-4o", 6, 2))) // stale prefix of chunk 1
	if got, want := viewSums(t, s, "usage_1m", "workspace_id = 'w1'"), (sums{3, 23, 3 * 6}); got != want {
		t.Errorf("usage_1m = %+v, want %+v", got, want)
	}
	if got := viewSums(t, s, "usage_1m", "`partition` = 3 AND chunk = 1"); got.requests != 7 {
		t.Errorf("partition 3 chunk 1 requests = %d, want 7", got.requests)
	}
}

func TestRejectedOnePerOffset(t *testing.T) {
	s := newTestSink(t)
	recordTime := time.Date(2024, 5, 31, 23, 59, 59, 0, time.UTC)
	reject := func(offset int64, payload []byte) aggregate.Rejection {
		return aggregate.Rejection{Offset: offset, Reason: "invalid_json", Field: "", Detail: "unexpected end",
			RecordTime: recordTime, Size: 10_000_000, Payload: payload}
	}
	big := bytes.Repeat([]byte("x"), aggregate.MaxRejectedPayload+100)
	first := rollup(0, 0, 7)
	first.Rejected = []aggregate.Rejection{reject(5, []byte("{")), reject(7, big)}
	first.Progress.Rejected = 2
	longer := rollup(0, 0, 20)
	longer.Rejected = []aggregate.Rejection{reject(5, []byte("{")), reject(7, big), reject(9, nil)}
	longer.Progress.Rejected = 3

	pin(s, time.Date(2024, 6, 1, 0, 0, 5, 0, time.UTC))
	write(t, s, first)
	pin(s, time.Date(2024, 7, 2, 0, 0, 0, 0, time.UTC)) // a replay a month later
	write(t, s, first)
	write(t, s, longer)

	view := s.database + ".usage_rejected"
	wantUint(t, s, "SELECT count() FROM "+view, 3) // one row per rejected offset
	wantUint(t, s, "SELECT count() FROM "+view+" WHERE `offset` = 7", 1)
	wantUint(t, s, "SELECT max(length(payload)) FROM "+view, aggregate.MaxRejectedPayload)
	wantUint(t, s, "SELECT sum(size) FROM "+view+" WHERE reason = 'invalid_json' AND toYYYYMM(record_time) = 202405", 30_000_000)
}

func TestChunkProgress(t *testing.T) {
	s := newTestSink(t)
	for _, last := range []int64{10, 30, 20} { // 20 is a stale retry arriving late
		b := rollup(2, 2000, 2000+last, row(t0, "w1", "gpt-4o", uint64(last), 1))
		b.Progress.Duplicates = 1
		write(t, s, b)
	}
	var (
		first, last                    int64
		accepted, rejected, duplicates uint64
		maxEventTime                   time.Time
	)
	err := s.conn.QueryRow(t.Context(), "SELECT first_offset, last_offset, accepted, rejected, duplicates, max_event_time FROM "+
		s.database+".usage_chunk_progress WHERE topic = ? AND `partition` = 3 AND chunk = 2", testTopic).
		Scan(&first, &last, &accepted, &rejected, &duplicates, &maxEventTime)
	if err != nil {
		t.Fatal(err)
	}
	if first != 2000 || last != 2030 || accepted != 30 || rejected != 0 || duplicates != 1 || maxEventTime.Unix() != t0 {
		t.Errorf("progress = [%d, %d] accepted %d rejected %d duplicates %d max_event_time %s; want [2000, 2030] 30 0 1 %s",
			first, last, accepted, rejected, duplicates, maxEventTime, time.Unix(t0, 0).UTC())
	}
	wantUint(t, s, "SELECT count() FROM "+s.database+".usage_chunk_progress", 1)
}

func TestWriteProgressOnlyBatch(t *testing.T) {
	// A flush with no changed rows (all duplicates) still records progress.
	s := newTestSink(t)
	b := rollup(0, 0, 9)
	b.Progress.Duplicates = 10
	write(t, s, b)
	wantUint(t, s, "SELECT sum(duplicates) FROM "+s.database+".usage_chunk_progress", 10)
}

func TestWriteErrors(t *testing.T) {
	s := newTestSink(t)
	b := rollup(0, 0, 1, row(t0, "w1", "gpt-4o", 1, 1))
	b.Windows[0].Window = aggregate.Window{Size: 5 * time.Minute, Name: "5m"}
	if err := s.Write(t.Context(), b); err == nil || !strings.Contains(err.Error(), "window 5m is not configured") {
		t.Errorf("Write for an unconfigured window = %v, want a clear error", err)
	}

	execSQL(t, s, "DROP TABLE "+s.database+".usage_rollup_1m")
	err := s.Write(t.Context(), rollup(0, 0, 1, row(t0, "w1", "gpt-4o", 1, 1)))
	if err == nil {
		t.Fatal("Write to a dropped table succeeded")
	}
	if want := "insert usage_rollup_1m (topic usage-events partition 3 chunk 0): "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error = %q, want prefix %q", err, want)
	}
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) || ex.Code != 60 { // UNKNOWN_TABLE
		t.Errorf("error %v does not unwrap to the server's UNKNOWN_TABLE exception", err)
	}
	if s.Transient(err) {
		t.Errorf("Transient(%v) = true, want false for a missing table", err)
	}
}

func TestFinalityKeepsTheFurthestAdvance(t *testing.T) {
	s := newTestSink(t)
	ctx := t.Context()
	ms := func(hhmm string) int64 {
		ts, err := time.Parse(time.RFC3339, "2026-11-27T"+hhmm+":00Z")
		if err != nil {
			t.Fatal(err)
		}
		return ts.UnixMilli()
	}
	writes := []aggregate.Finality{
		{Topic: testTopic, Partition: 0, ClosedThroughMs: ms("10:00"), CommittedOffset: 10},
		{Topic: testTopic, Partition: 0, ClosedThroughMs: ms("10:05"), CommittedOffset: 20},
		// A restarted consumer re-derives an older watermark: it must not move finality back.
		{Topic: testTopic, Partition: 0, ClosedThroughMs: ms("10:01"), CommittedOffset: 12},
		{Topic: testTopic, Partition: 1, ClosedThroughMs: ms("10:03"), CommittedOffset: 7, Idle: true},
	}
	for _, f := range writes {
		if err := s.WriteFinality(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	q := "SELECT toUInt64(toUnixTimestamp(closed_through)) FROM " + s.database + ".usage_progress WHERE topic = '" + testTopic + "' AND `partition` = 0"
	if got := servicetest.QueryUint(t, s.conn, q); got != uint64(ms("10:05")/1000) {
		t.Errorf("partition 0 closed_through = %d, want 10:05", got)
	}
	q = "SELECT toUInt64(toUnixTimestamp(closed_through)) FROM " + s.database + ".usage_progress_topic WHERE topic = '" + testTopic + "'"
	if got := servicetest.QueryUint(t, s.conn, q); got != uint64(ms("10:03")/1000) {
		t.Errorf("topic closed_through = %d, want the slowest partition's 10:03", got)
	}
	wantUint(t, s, "SELECT partitions FROM "+s.database+".usage_progress_topic", 2)
}

// TestWriteStampsTheInjectedClock checks that every wall-clock column comes
// from Config.Now, and nothing else does: a replay stamped later keeps the
// same sums.
func TestWriteStampsTheInjectedClock(t *testing.T) {
	s := newTestSink(t)
	at := time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)
	pin(s, at)
	b := rollup(0, 0, 9, row(t0, "w1", "gpt-4o", 3, 2))
	b.Windows = append(b.Windows, aggregate.WindowRows{Window: w1h, Rows: []aggregate.Row{row(t0, "w1", "gpt-4o", 3, 2)}})
	b.Rejected = []aggregate.Rejection{{Offset: 4, Reason: "invalid_json", RecordTime: time.Unix(t0, 0)}}
	write(t, s, b)
	if err := s.WriteFinality(t.Context(), aggregate.Finality{Topic: testTopic, Partition: 3, ClosedThroughMs: t0 * 1000}); err != nil {
		t.Fatal(err)
	}
	pin(s, at.Add(time.Hour)) // a replay, later
	write(t, s, b)

	stamps := map[string]string{
		"usage_rollup_1m": "written_at", "usage_rollup_1h": "written_at", "usage_chunks": "written_at",
		"usage_rejected_log": "rejected_at", "usage_progress_log": "advanced_at",
	}
	for table, col := range stamps {
		q := "SELECT toUInt64(min(toUnixTimestamp(" + col + "))) FROM " + s.database + "." + table
		if got := servicetest.QueryUint(t, s.conn, q); got != uint64(at.Unix()) {
			t.Errorf("%s.%s = %s, want the pinned %s", table, col, time.Unix(int64(got), 0).UTC(), at)
		}
	}
	if got := viewSums(t, s, "usage_1m", "1"); got != (sums{1, 3, 6}) {
		t.Errorf("usage_1m after a later replay = %+v, want one row of 3 requests", got)
	}
}
