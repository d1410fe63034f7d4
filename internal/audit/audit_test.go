package audit

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/rs/zerolog"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/chconn"
	"github.com/usage-rollup/usage-rollup/internal/schema"
	"github.com/usage-rollup/usage-rollup/internal/sink"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/servicetest"
)

var (
	w1m = aggregate.Window{Size: time.Minute, Name: "1m"}
	w1h = aggregate.Window{Size: time.Hour, Name: "1h"}
)

// recordingConn records the queries it is sent and fails each with errSent:
// the test is about what the reader refuses before sending anything.
type recordingConn struct{ queries []string }

var errSent = errors.New("sent to the server")

func (c *recordingConn) Query(_ context.Context, query string, _ ...any) (driver.Rows, error) {
	c.queries = append(c.queries, query)
	return nil, errSent
}

func (c *recordingConn) QueryRow(context.Context, string, ...any) driver.Row {
	panic("TotalsByWorkspaceModel uses Query")
}

func (c *recordingConn) StatementContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithCancel(ctx)
}

func (c *recordingConn) Database() string { return "usage_rollup" }

// TestTotalsRefusesUnknownWindow: the window becomes part of a view name, so
// only the configured ones get as far as the server.
func TestTotalsRefusesUnknownWindow(t *testing.T) {
	conn := &recordingConn{}
	// A window configured by hand with a name no parser would produce is
	// refused all the same.
	injected := aggregate.Window{Size: time.Hour, Name: "1h WHERE 0 UNION ALL SELECT"}
	r := New(conn, []aggregate.Window{w1m, w1h, injected})
	for _, bad := range []string{"1d", "", "1H", "usage_1h", "1h ", "1h WHERE 1 --", "1m FROM system.one UNION ALL SELECT", injected.Name} {
		_, err := r.TotalsByWorkspaceModel(t.Context(), bad, "usage-events")
		if !errors.Is(err, ErrUnknownWindow) {
			t.Errorf("TotalsByWorkspaceModel(%q) = %v, want ErrUnknownWindow", bad, err)
		}
	}
	if len(conn.queries) != 0 {
		t.Errorf("unknown windows reached the server: %q", conn.queries)
	}
	for _, good := range []string{"1m", "1h"} {
		if _, err := r.TotalsByWorkspaceModel(t.Context(), good, "usage-events"); !errors.Is(err, errSent) {
			t.Errorf("TotalsByWorkspaceModel(%q) = %v, want the query sent", good, err)
		}
	}
	want := []string{"`usage_rollup`.usage_1m WHERE topic = ?", "`usage_rollup`.usage_1h WHERE topic = ?"}
	if len(conn.queries) != len(want) {
		t.Fatalf("queries sent = %q, want %d", conn.queries, len(want))
	}
	for i, q := range conn.queries {
		if !strings.Contains(q, want[i]) {
			t.Errorf("query %d = %q, want it to read %q", i, q, want[i])
		}
	}
}

// TestReadsWhatTheSinkWrote reads back, through the views, batches the sink
// wrote: including a shorter prefix written last, which must not show.
func TestReadsWhatTheSinkWrote(t *testing.T) {
	addr, db := servicetest.TempDatabase(t)
	cc := chconn.DefaultConfig()
	cc.Addr, cc.Database = []string{addr}, db
	windows := []aggregate.Window{w1m, w1h}
	c, _, err := schema.Setup(t.Context(), cc, schema.Config{Windows: windows}, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	snk, err := sink.New(c, sink.Config{Windows: windows})
	if err != nil {
		t.Fatal(err)
	}
	const topic, t0 = "usage-events", 1715688000
	measures := func(requests uint64) aggregate.Measures {
		return aggregate.Measures{Requests: requests, InputTokens: 10 * requests, TotalTokens: 10 * requests,
			LatencyMsSum: 100 * requests, LatencyMsMax: 100}
	}
	batch := func(partition int32, last int64, workspace string, requests uint64) *aggregate.Batch {
		r := aggregate.Row{WindowStart: t0, Dims: aggregate.Dims{WorkspaceID: workspace, Model: "gpt-4o"}, Measures: measures(requests)}
		return &aggregate.Batch{
			Topic: topic, Partition: partition,
			Windows:  []aggregate.WindowRows{{Window: w1m, Rows: []aggregate.Row{r}}, {Window: w1h, Rows: []aggregate.Row{r}}},
			Progress: aggregate.Progress{FirstOffset: 0, LastOffset: last, Accepted: requests, Rejected: uint64(last+1) - requests},
		}
	}
	long := batch(0, 9, "w1", 8)
	long.Rejected = []aggregate.Rejection{{Offset: 3, Reason: "invalid_json"}, {Offset: 5, Reason: "oversized"}}
	for _, b := range []*aggregate.Batch{long, batch(1, 4, "w2", 5), batch(0, 5, "w1", 4)} { // the last is a stale prefix
		if err := snk.Write(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}

	r := New(c, windows)
	want := []GroupTotals{{"w1", "gpt-4o", measures(8)}, {"w2", "gpt-4o", measures(5)}}
	for _, w := range []string{"1m", "1h"} {
		got, err := r.TotalsByWorkspaceModel(t.Context(), w, topic)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("TotalsByWorkspaceModel(%s) = %+v, %v; want %+v", w, got, err, want)
		}
	}
	if got, err := r.TotalsByWorkspaceModel(t.Context(), "1h", "other-topic"); err != nil || len(got) != 0 {
		t.Errorf("TotalsByWorkspaceModel of another topic = %+v, %v; want none", got, err)
	}
	progress, err := r.Progress(t.Context(), topic)
	wantProgress := []PartitionProgress{
		{Partition: 0, FirstOffset: 0, NextOffset: 10, Accepted: 8, Rejected: 2},
		{Partition: 1, FirstOffset: 0, NextOffset: 5, Accepted: 5},
	}
	if err != nil || !slices.Equal(progress, wantProgress) {
		t.Errorf("Progress = %+v, %v; want %+v", progress, err, wantProgress)
	}
	for _, p := range progress {
		if !p.Balanced() {
			t.Errorf("partition %d does not balance: %+v", p.Partition, p)
		}
	}
	if n, err := r.RejectedCount(t.Context(), topic); err != nil || n != 2 {
		t.Errorf("RejectedCount = %d, %v; want 2", n, err)
	}
}

func TestBalanced(t *testing.T) {
	tests := []struct {
		p    PartitionProgress
		want bool
	}{
		{PartitionProgress{FirstOffset: 100, NextOffset: 110, Accepted: 7, Rejected: 2, Duplicates: 1}, true},
		{PartitionProgress{FirstOffset: 100, NextOffset: 110, Accepted: 7, Rejected: 2}, false}, // a gap: compaction
		{PartitionProgress{FirstOffset: 100, NextOffset: 110, Accepted: 9, Rejected: 2}, false}, // counted twice
		{PartitionProgress{FirstOffset: 0, NextOffset: 0}, true},
	}
	for _, tt := range tests {
		if got := tt.p.Balanced(); got != tt.want {
			t.Errorf("%+v.Balanced() = %t, want %t", tt.p, got, tt.want)
		}
	}
}
