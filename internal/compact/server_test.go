package compact

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/chconn"
	"github.com/usage-rollup/usage-rollup/internal/schema"
	"github.com/usage-rollup/usage-rollup/internal/sink"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/servicetest"
)

// Tests here run against a real ClickHouse (CLICKHOUSE_ADDR, default
// 127.0.0.1:9000, the 18.16 server of scripts/clickhouse.sh); without one
// they skip, unless USAGE_ROLLUP_REQUIRE_SERVICES=1.

const testTopic = "usage-events"

// t0 is 2024-05-14 12:00 UTC.
const t0 = 1715688000

var (
	w1m     = aggregate.Window{Size: time.Minute, Name: "1m"}
	w1h     = aggregate.Window{Size: time.Hour, Name: "1h"}
	windows = []aggregate.Window{w1m, w1h}
)

type env struct {
	conn *chconn.Conn
	sink *sink.Sink
}

func newEnv(t *testing.T) *env {
	t.Helper()
	addr, db := servicetest.TempDatabase(t)
	cc := chconn.DefaultConfig()
	cc.Addr, cc.Database = []string{addr}, db
	c, _, err := schema.Setup(t.Context(), cc, schema.Config{Windows: windows}, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatalf("schema.Setup: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	s, err := sink.New(c, sink.Config{Windows: windows})
	if err != nil {
		t.Fatal(err)
	}
	return &env{conn: c, sink: s}
}

// compactor compacts with a 1s run limit and a 200ms settle pause, so that a
// second run 2.1s after the first deletes what the first folded.
func (e *env) compactor(t *testing.T) *Compactor {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Windows, cfg.Topic, cfg.Settle, cfg.MaxRun, cfg.WaitDeletes, cfg.BatchWindows = windows, testTopic, 200*time.Millisecond, time.Second, true, 3
	c, err := New(e.conn, cfg, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *env) write(t *testing.T, b *aggregate.Batch) {
	t.Helper()
	if err := e.sink.Write(t.Context(), b); err != nil {
		t.Fatalf("Write(partition %d chunk %d): %v", b.Partition, b.Chunk, err)
	}
}

// piece writes the rows of partition p, chunk, segment at version with
// measures scaled by k, in the 1m windows t0, t0+60, t0+120 and the 1h window t0.
func (e *env) piece(t *testing.T, p int32, chunk, segment, version int64, k uint64) {
	t.Helper()
	row := func(ws int64, workspace, model string, n uint64) aggregate.Row {
		return aggregate.Row{WindowStart: ws,
			Dims: aggregate.Dims{WorkspaceID: workspace, ProjectID: "p1", APIKeyID: "k1", Provider: "openai", Model: model, Endpoint: "/v1/chat"},
			Measures: aggregate.Measures{Requests: n, InputTokens: 10 * n, InputTextTokens: 10 * n, OutputTokens: 3 * n,
				TotalTokens: 13 * n, LatencyMsSum: 50 * n, LatencyMsMax: 40 + n + uint64(p), LateEvents: n % 2}}
	}
	var m1, h1 []aggregate.Row
	for i, ws := range []int64{t0, t0 + 60, t0 + 120} {
		n := k*uint64(i+1) + uint64(p) + uint64(chunk)
		m1 = append(m1, row(ws, "w1", "gpt-4o", n), row(ws, fmt.Sprintf("w%d", 2+int(p)%2), "o1", n+1))
		h1 = append(h1, row(t0, "w1", "gpt-4o", n), row(t0, fmt.Sprintf("w%d", 2+int(p)%2), "o1", n+1))
	}
	// The 1h rows of one group fold into one row per batch, as the aggregator does.
	h1 = []aggregate.Row{sumRows(h1[0], h1[2], h1[4]), sumRows(h1[1], h1[3], h1[5])}
	e.write(t, &aggregate.Batch{Topic: testTopic, Partition: p, Chunk: chunk, Segment: segment,
		Windows:  []aggregate.WindowRows{{Window: w1m, Rows: m1}, {Window: w1h, Rows: h1}},
		Progress: aggregate.Progress{FirstOffset: chunk * 100, LastOffset: version, Accepted: k, MaxEventTimeMs: (t0 + 180) * 1000}})
}

// sumRows folds rows of one group into one with the aggregator's own Merge:
// they are input the test writes, not sums it checks (the compactor's sums
// are checked against the views' totals before compaction).
func sumRows(rs ...aggregate.Row) aggregate.Row {
	out := rs[0]
	for _, r := range rs[1:] {
		out.Measures.Merge(&r.Measures)
	}
	return out
}

// history writes chunks 0..chunks-1 of partitions 0..parts-1, each as a
// shorter prefix, a longer one and (chunk 1) a second segment, then closes
// the windows through t0 + 2h.
func (e *env) history(t *testing.T, parts int32, chunks int64) {
	t.Helper()
	for p := range parts {
		for c := range chunks {
			e.piece(t, p, c, c*100, c*100+10, 1)
			e.piece(t, p, c, c*100, c*100+50, 3) // a longer prefix supersedes the shorter one
			if c == 1 {
				e.piece(t, p, c, c*100+60, c*100+70, 2) // a second segment of the chunk
			}
		}
		e.close(t, p, t0+2*3600)
	}
}

func (e *env) close(t *testing.T, p int32, through int64) {
	t.Helper()
	if err := e.sink.WriteFinality(t.Context(), aggregate.Finality{Topic: testTopic, Partition: p,
		ClosedThroughMs: through * 1000, MaxEventTimeMs: through * 1000}); err != nil {
		t.Fatal(err)
	}
}

// totals is every view's sums per group, as text: equal totals mean equal
// answers to any analyst query.
func (e *env) totals(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	for _, view := range []string{"usage_1m", "usage_1h", "usage_cost_1m", "usage_cost_1h"} {
		extra := "sum(latency_ms_sum), max(latency_ms_max), sum(late_events), sum(input_tokens), sum(output_tokens)"
		if strings.HasPrefix(view, "usage_cost") {
			extra = "sum(input_tokens), sum(output_tokens), sum(cost)"
		}
		q := "SELECT toString(groupArray(tuple(window_start, workspace_id, model, s, t, x))) FROM (SELECT window_start, workspace_id, model, " +
			"sum(requests) AS s, sum(total_tokens) AS t, toString(tuple(" + extra + ")) AS x FROM " + view +
			" GROUP BY window_start, workspace_id, model ORDER BY window_start, workspace_id, model)"
		var s string
		if err := e.conn.QueryRow(context.Background(), q).Scan(&s); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		b.WriteString(view + ": " + s + "\n")
	}
	return b.String()
}

func (e *env) count(t testing.TB, q string) uint64 {
	t.Helper()
	var n uint64
	if err := e.conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// rowsPerGroup is the rows usage_1m returns per (window, dimensions) group.
func (e *env) rowsPerGroup(t testing.TB, view string) float64 {
	t.Helper()
	rows := e.count(t, "SELECT count() FROM "+view)
	groups := e.count(t, "SELECT count() FROM (SELECT DISTINCT window_start, workspace_id, project_id, api_key_id, provider, model, endpoint FROM "+view+")")
	return float64(rows) / float64(groups)
}

func (e *env) run(t *testing.T, c *Compactor) []Result {
	t.Helper()
	res, err := c.Run(t.Context())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

// mustEqual fails when the totals differ from want.
func mustEqual(t *testing.T, when, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: totals changed\n got: %s\nwant: %s", when, got, want)
	}
}

func TestCompactKeepsSumsAndDeletesFoldedRows(t *testing.T) {
	e := newEnv(t)
	e.history(t, 4, 3) // chunk 2 of each partition is not complete
	want := e.totals(t)
	before := e.rowsPerGroup(t, "usage_1m")
	c := e.compactor(t)
	res := e.run(t, c)
	if res[0].Compacted != 3 || res[1].Compacted != 1 {
		t.Fatalf("first run compacted %+v, want 3 windows of 1m and 1 of 1h", res)
	}
	mustEqual(t, "after compaction", e.totals(t), want)
	if res[0].Deleted != 0 {
		t.Errorf("deleted %d rows below manifests younger than the run limit", res[0].Deleted)
	}
	// Nothing new: the second run compacts nothing; 2.1s later the
	// manifests are old enough for their raw pieces to be deleted.
	time.Sleep(2100 * time.Millisecond)
	res = e.run(t, c)
	if res[0].Compacted != 0 || res[0].Deleted == 0 || res[1].Deleted == 0 {
		t.Fatalf("second run %+v, want nothing compacted and folded rows deleted", res)
	}
	mustEqual(t, "after deleting folded raw rows", e.totals(t), want)
	if n := e.count(t, "SELECT count() FROM usage_rollup_1m WHERE chunk < 2"); n != 0 {
		t.Errorf("%d raw rows of folded chunks remain", n)
	}
	after := e.rowsPerGroup(t, "usage_1m")
	t.Logf("usage_1m rows per group: %.2f before, %.2f after (raw pieces of chunk 2 stay)", before, after)
	if after >= before {
		t.Errorf("rows per group %.2f, not below %.2f", after, before)
	}
	// Begin chunk 3 (no rows yet): chunk 2 is complete, everything folds,
	// incrementally on top of the first compaction.
	for p := range int32(4) {
		e.begin(t, p, 3)
	}
	res = e.run(t, c)
	if res[0].Compacted != 3 {
		t.Fatalf("third run %+v, want the 3 windows compacted again", res)
	}
	mustEqual(t, "after the incremental compaction", e.totals(t), want)
	if g := e.count(t, "SELECT max(generation) FROM usage_compactions"); g != 2 {
		t.Errorf("newest generation %d, want 2", g)
	}
	time.Sleep(2100 * time.Millisecond)
	e.run(t, c)
	mustEqual(t, "after deleting the rest", e.totals(t), want)
	for _, view := range []string{"usage_1m", "usage_1h"} {
		if r := e.rowsPerGroup(t, view); r != 1 {
			t.Errorf("%s: %.2f rows per group, want 1", view, r)
		}
	}
	if n := e.count(t, "SELECT count() FROM usage_rollup_1m"); n != 0 {
		t.Errorf("%d raw rows remain", n)
	}
}

// begin writes the first, empty batch of a chunk: only its usage_chunks row.
func (e *env) begin(t *testing.T, p int32, chunk int64) {
	t.Helper()
	e.write(t, &aggregate.Batch{Topic: testTopic, Partition: p, Chunk: chunk, Segment: chunk * 100,
		Progress: aggregate.Progress{FirstOffset: chunk * 100, LastOffset: chunk * 100}})
}

func TestLatePieceAfterCompaction(t *testing.T) {
	e := newEnv(t)
	e.history(t, 2, 2)
	c := e.compactor(t)
	e.run(t, c)
	time.Sleep(2100 * time.Millisecond)
	e.run(t, c) // deletes the folded pieces
	// A late event of a compacted window arrives in chunk 1 (not complete):
	// the view adds its raw piece to the compact rows at once.
	before := e.count(t, "SELECT sum(requests) FROM usage_1m")
	e.piece(t, 0, 1, 100, 180, 5) // a longer prefix of chunk 1
	mid := e.totals(t)
	if after := e.count(t, "SELECT sum(requests) FROM usage_1m"); after <= before {
		t.Fatalf("late piece not visible: %d requests before, %d after", before, after)
	}
	// A replay rewrites pieces already folded and deleted: identical rows,
	// excluded by the manifest.
	e.piece(t, 0, 0, 0, 50, 3)
	e.piece(t, 1, 0, 0, 10, 1)
	mustEqual(t, "after replaying folded chunks", e.totals(t), mid)
	e.begin(t, 0, 2)
	e.begin(t, 1, 2)
	e.run(t, c)
	mustEqual(t, "after compacting the late piece", e.totals(t), mid)
	time.Sleep(2100 * time.Millisecond)
	e.run(t, c)
	mustEqual(t, "after deleting the late piece and the replayed rows", e.totals(t), mid)
	if n := e.count(t, "SELECT count() FROM usage_rollup_1m"); n != 0 {
		t.Errorf("%d raw rows remain", n)
	}
}

func TestCrashBeforeManifestChangesNothing(t *testing.T) {
	e := newEnv(t)
	e.history(t, 3, 3)
	want := e.totals(t)
	c := e.compactor(t)
	// The first phase only, as a compactor killed before publishing leaves it.
	for _, w := range windows {
		plans, err := c.plan(t.Context(), w)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.writeRows(t.Context(), w, plans); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.count(t, "SELECT count() FROM usage_compact_1m"); n == 0 {
		t.Fatal("the first phase wrote no compact rows")
	}
	mustEqual(t, "orphan compact rows", e.totals(t), want)
	orphans := e.count(t, "SELECT count() FROM usage_compact_1m FINAL")
	// The next run recomputes the same compaction: the same ids and rows.
	e.run(t, c)
	mustEqual(t, "after the re-run", e.totals(t), want)
	if n := e.count(t, "SELECT count() FROM usage_compact_1m FINAL"); n != orphans {
		t.Errorf("re-run wrote other rows: %d distinct compact rows, the crashed run %d", n, orphans)
	}
}

func TestFencedRunPublishesNothing(t *testing.T) {
	e := newEnv(t)
	e.history(t, 2, 2)
	want := e.totals(t)
	c := e.compactor(t)
	plans, err := c.plan(t.Context(), w1m)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.writeRows(t.Context(), w1m, plans); err != nil {
		t.Fatal(err)
	}
	err = c.publish(t.Context(), w1m, plans, time.Unix(t0, 0))
	if err == nil || !strings.Contains(err.Error(), ErrFenced.Error()) {
		t.Fatalf("publish after the deadline: %v, want %v", err, ErrFenced)
	}
	if n := e.count(t, "SELECT count() FROM usage_compactions"); n != 0 {
		t.Errorf("%d manifests published after the deadline", n)
	}
	mustEqual(t, "fenced run", e.totals(t), want)
}

func TestConcurrentCompactorsKeepSums(t *testing.T) {
	e := newEnv(t)
	e.history(t, 4, 3)
	want := e.totals(t)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	polls := 0
	wg.Go(func() { // exactness sampled while the compactors run
		for ctx.Err() == nil {
			if got := e.totals(t); got != want {
				mu.Lock()
				bad = append(bad, got)
				mu.Unlock()
			}
			polls++
		}
	})
	var runs sync.WaitGroup
	for i := range 3 {
		c := e.compactor(t)
		runs.Go(func() {
			for round := range 3 {
				if round == 1 && i == 0 {
					for p := range int32(4) {
						e.begin(t, p, 3) // more becomes complete mid-way
					}
				}
				// A run slowed past the 1s limit by the others is fenced: harmless.
				if _, err := c.Run(ctx); err != nil && !errors.Is(err, ErrFenced) {
					t.Errorf("compactor %d round %d: %v", i, round, err)
				}
				time.Sleep(time.Duration(700*(i+1)) * time.Millisecond)
			}
		})
	}
	runs.Wait()
	cancel()
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("%d of %d samples during the runs differed, e.g.\n%s\nwant\n%s", len(bad), polls, bad[0], want)
	}
	mustEqual(t, "after concurrent compactors", e.totals(t), want)
	t.Logf("%d samples exact; usage_1m %.2f rows per group", polls, e.rowsPerGroup(t, "usage_1m"))
}
