package sink

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
)

func TestMonthIndex(t *testing.T) {
	tests := []struct {
		sec  int64
		want string
	}{
		{0, "197001"},
		{-1 << 40, "197001"}, // clamped like the DateTime the writer stores
		{t0, "202405"},
		{time.Date(2024, 5, 31, 23, 59, 59, 0, time.UTC).Unix(), "202405"},
		{time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC).Unix(), "202406"},
		{1 << 40, "210602"}, // 2^32-1 is 2106-02-07
	}
	for _, tt := range tests {
		if got := monthName(monthIndex(tt.sec)); got != tt.want {
			t.Errorf("monthName(monthIndex(%d)) = %s, want %s", tt.sec, got, tt.want)
		}
	}
}

func TestSplitByMonth(t *testing.T) {
	seq := func(from, n int32) []int32 { // n consecutive months, descending
		out := make([]int32, n)
		for i := range out {
			out[i] = from + n - 1 - int32(i)
		}
		return out
	}
	tests := []struct {
		name   string
		months []int32
		max    int
		want   [][]int // nil: one INSERT of all rows in their order
	}{
		{"none", nil, 3, nil},
		{"one month", []int32{5, 5, 5}, 3, nil},
		{"span equal to the bound", []int32{7, 5, 6, 5}, 3, nil},
		{"span one over the bound", []int32{8, 5, 6, 7}, 3, [][]int{{1, 2, 3}, {0}}},
		{"two months far apart fit one insert", []int32{1000, 0, 1000}, 3, [][]int{{1, 0, 2}}},
		{"repeats keep their order within a month", []int32{9, 1, 9, 2, 1, 3, 4}, 2,
			[][]int{{1, 4, 3}, {5, 6}, {0, 2}}},
		{"bound of one", []int32{3, 1, 2, 1}, 1, [][]int{{1, 3}, {2}, {0}}},
	}
	for _, tt := range tests {
		if got := splitByMonth(tt.months, tt.max); !slices.EqualFunc(got, tt.want, slices.Equal) {
			t.Errorf("%s: splitByMonth(%v, %d) = %v, want %v", tt.name, tt.months, tt.max, got, tt.want)
		}
	}

	// 150 months at the production bound: 12 inserts of 12 months and one of
	// 6, in ascending month order, each row exactly once.
	months := seq(24000, 150)
	groups := splitByMonth(months, maxMonthsPerInsert)
	if len(groups) != 13 {
		t.Fatalf("150 months in %d inserts, want 13", len(groups))
	}
	seen := make([]bool, len(months))
	last := int32(-1)
	for i, g := range groups {
		distinct := map[int32]bool{}
		for _, r := range g {
			if seen[r] {
				t.Errorf("row %d in two inserts", r)
			}
			seen[r] = true
			if months[r] < last {
				t.Errorf("insert %d: month %d after %d, want ascending", i, months[r], last)
			}
			last = months[r]
			distinct[months[r]] = true
		}
		if len(distinct) > maxMonthsPerInsert {
			t.Errorf("insert %d spans %d months, want at most %d", i, len(distinct), maxMonthsPerInsert)
		}
	}
	if slices.Contains(seen, false) {
		t.Errorf("some rows are in no insert: %v", seen)
	}
}

func TestSplitByMonthFastPathDoesNotAllocate(t *testing.T) {
	months := []int32{24293, 24292, 24293, 24293}
	if n := testing.AllocsPerRun(100, func() { _ = splitByMonth(months, maxMonthsPerInsert) }); n != 0 {
		t.Errorf("splitByMonth of a two-month batch allocates %v times, want 0", n)
	}
}

// insertProbe records, through materialized views, one row per block
// inserted into the rollup tables, usage_rejected_log and usage_chunks, in
// insertion order (TinyLog keeps it): the months the block spans and its rows.
// 18.16 has neither max_partitions_per_insert_block nor query_log or
// part_log (unless configured), but a materialized view runs its SELECT on
// each inserted block, so a block spanning 150 months shows up as one probe
// row with months = 150.
func insertProbe(t *testing.T, s *Sink) {
	t.Helper()
	db := s.database
	stmts := []string{
		"CREATE TABLE " + db + ".insert_probe (tbl String, months UInt64, first UInt32, last UInt32, rows UInt64) ENGINE = TinyLog",
	}
	monthly := map[string]string{"usage_rollup_1m": "window_start", "usage_rollup_1h": "window_start",
		"usage_rejected_log": "record_time", "usage_chunks": "max_event_time"}
	for _, tbl := range []string{"usage_rollup_1m", "usage_rollup_1h", "usage_rejected_log", "usage_chunks"} {
		col := monthly[tbl]
		stmts = append(stmts, fmt.Sprintf("CREATE MATERIALIZED VIEW %[1]s.probe_%[2]s TO %[1]s.insert_probe AS "+
			"SELECT '%[2]s' AS tbl, uniqExact(toYYYYMM(%[3]s)) AS months, min(toYYYYMM(%[3]s)) AS first, "+
			"max(toYYYYMM(%[3]s)) AS last, count() AS rows FROM %[1]s.%[2]s", db, tbl, col))
	}
	for _, stmt := range stmts {
		execSQL(t, s, stmt)
	}
}

type probeRow struct {
	tbl               string
	months            uint64
	first, last, rows uint64
}

func probeRows(t *testing.T, s *Sink) []probeRow {
	t.Helper()
	rows, err := s.conn.Query(t.Context(), "SELECT tbl, months, toUInt64(first), toUInt64(last), rows FROM "+s.database+".insert_probe")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []probeRow
	for rows.Next() {
		var p probeRow
		if err := rows.Scan(&p.tbl, &p.months, &p.first, &p.last, &p.rows); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// monthsBatch is a batch whose rows span 150 months, given newest first:
// two 1m rows and one 1h row per month, and one rejection per month.
func monthsBatch(first time.Time, n int) *aggregate.Batch {
	b := rollup(0, 0, int64(3*n-1))
	b.Windows = append(b.Windows, aggregate.WindowRows{Window: w1h})
	for i := n - 1; i >= 0; i-- {
		ts := first.AddDate(0, i, 0).Unix()
		b.Windows[0].Rows = append(b.Windows[0].Rows, row(ts, "w1", "gpt-4o", 1, 1), row(ts+60, "w2", "gpt-4o", 2, 1))
		b.Windows[1].Rows = append(b.Windows[1].Rows, row(ts, "w1", "gpt-4o", 3, 2))
		b.Rejected = append(b.Rejected, aggregate.Rejection{Offset: int64(3*i + 2), Reason: "invalid_json",
			RecordTime: time.Unix(ts, 0), Size: 1, Payload: []byte("{")})
	}
	b.Progress.Accepted, b.Progress.Rejected = uint64(2*n), uint64(n)
	return b
}

func TestWriteSpanningManyMonths(t *testing.T) {
	s := newTestSink(t)
	insertProbe(t, s)
	first := time.Date(2012, 1, 15, 12, 0, 0, 0, time.UTC)
	const months = 150
	write(t, s, monthsBatch(first, months))

	// Every row arrived.
	if got, want := viewSums(t, s, "usage_1m", "1"), (sums{2 * months, 3 * months, 2 * 3 * months}); got != want {
		t.Errorf("usage_1m = %+v, want %+v", got, want)
	}
	if got, want := viewSums(t, s, "usage_1h", "1"), (sums{months, 3 * months, 6 * months}); got != want {
		t.Errorf("usage_1h = %+v, want %+v", got, want)
	}
	wantUint(t, s, "SELECT uniqExact(toYYYYMM(record_time)) FROM "+s.database+".usage_rejected", months)
	wantUint(t, s, "SELECT count() FROM "+s.database+".usage_rejected", months)

	// No INSERT spanned more than the bound: 12 inserts of 12 months and one
	// of 6 per table, in ascending month order, and the progress row last.
	var want []probeRow
	for _, tbl := range []struct {
		name         string
		rowsPerMonth uint64
	}{{"usage_rollup_1m", 2}, {"usage_rollup_1h", 1}, {"usage_rejected_log", 1}} {
		for m := 0; m < months; m += maxMonthsPerInsert {
			n := min(maxMonthsPerInsert, months-m)
			from, to := first.AddDate(0, m, 0), first.AddDate(0, m+n-1, 0)
			want = append(want, probeRow{tbl.name, uint64(n), yyyymm(from), yyyymm(to), tbl.rowsPerMonth * uint64(n)})
		}
	}
	want = append(want, probeRow{"usage_chunks", 1, yyyymm(time.Unix(t0, 0)), yyyymm(time.Unix(t0, 0)), 1})
	got := probeRows(t, s)
	const serverLimit = 100 // current servers' default max_partitions_per_insert_block
	for _, p := range got {
		if p.months > serverLimit {
			t.Errorf("an INSERT into %s spanned %d months; current servers refuse more than %d", p.tbl, p.months, serverLimit)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("inserted blocks (table, months, first, last, rows):\n got %v\nwant %v", got, want)
	}

	// The probe does see a block spanning 150 months, as the writer sent
	// before it split by month (and as current servers refuse).
	execSQL(t, s, "INSERT INTO "+s.database+".usage_rollup_1m (window_start, topic, version) "+
		"SELECT addMonths(toDateTime('2012-01-15 12:00:00', 'UTC'), number), 'probe', 1 FROM system.numbers LIMIT 150")
	if got := probeRows(t, s); got[len(got)-1].months != months {
		t.Errorf("probe of one 150-month INSERT = %+v, want months = 150", got[len(got)-1])
	}
}

func yyyymm(ts time.Time) uint64 {
	ts = ts.UTC()
	return uint64(ts.Year()*100 + int(ts.Month()))
}

// TestWriteBatchesIsOneInsertPerTable writes the batches of 16 partitions
// together: every row arrives, and each table gets one INSERT, however many
// partitions the batches come from.
func TestWriteBatchesIsOneInsertPerTable(t *testing.T) {
	s := newTestSink(t)
	insertProbe(t, s)
	const partitions = 16
	var bs []*aggregate.Batch
	for p := range int32(partitions) {
		b := rollup(0, 0, 9, row(t0, fmt.Sprintf("w%d", p), "gpt-4o", 2, 5))
		b.Partition = p
		b.Windows = append(b.Windows, aggregate.WindowRows{Window: w1h, Rows: []aggregate.Row{row(t0, fmt.Sprintf("w%d", p), "gpt-4o", 2, 5)}})
		b.Rejected = []aggregate.Rejection{{Offset: 7, Reason: "invalid_json", RecordTime: time.Unix(t0, 0), Size: 1, Payload: []byte("{")}}
		bs = append(bs, b)
	}
	if err := s.WriteBatches(t.Context(), bs); err != nil {
		t.Fatal(err)
	}
	if got, want := viewSums(t, s, "usage_1m", "1"), (sums{partitions, 2 * partitions, 15 * partitions}); got != want {
		t.Errorf("usage_1m = %+v, want %+v", got, want)
	}
	wantUint(t, s, "SELECT count() FROM "+s.database+".usage_rejected", partitions) // one per partition
	wantUint(t, s, "SELECT count() FROM "+s.database+".usage_chunk_progress", partitions)
	m := yyyymm(time.Unix(t0, 0))
	want := []probeRow{
		{"usage_rollup_1m", 1, m, m, partitions}, {"usage_rollup_1h", 1, m, m, partitions},
		{"usage_rejected_log", 1, m, m, partitions}, {"usage_chunks", 1, m, m, partitions},
	}
	if got := probeRows(t, s); !slices.Equal(got, want) {
		t.Errorf("inserted blocks (table, months, first, last, rows):\n got %v\nwant %v", got, want)
	}
}
