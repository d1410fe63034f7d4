package sink

import (
	"testing"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/chconn"
	"github.com/usage-rollup/usage-rollup/internal/schema"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/servicetest"
)

// TestMonthSplitOnModernClickHouse sends the INSERTs splitByMonth plans for
// rows spanning 150 months (and garbage times clamped to 1970 and 2106) to a
// current ClickHouse whose max_partitions_per_insert_block is lowered to
// maxMonthsPerInsert: each must pass, so the split's months are the server's
// partitions, and one INSERT of all the rows must fail with the message
// chconn.IsTransient treats as permanent.
func TestMonthSplitOnModernClickHouse(t *testing.T) {
	version := servicetest.NeedChDB(t)
	const database = "usage_chdb"
	migrations, err := schema.RenderMigrations(version, database, []aggregate.Window{w1m})
	if err != nil {
		t.Fatal(err)
	}
	// The first and the last second of each month, newest first, so that a
	// month computed in another time zone than the server's would put an
	// INSERT over the limit.
	var times []int64
	first := time.Date(2012, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 149; i >= 0; i-- {
		times = append(times, first.AddDate(0, i, 0).Unix(), first.AddDate(0, i+1, 0).Unix()-1)
	}
	times = append(times, utcSeconds(-5), utcSeconds(1<<40))
	months := make([]int32, len(times))
	for i, ts := range times {
		months[i] = monthIndex(ts)
	}
	var inserts [][]int64
	for _, g := range splitByMonth(months, maxMonthsPerInsert) {
		var ins []int64
		for _, i := range g {
			ins = append(ins, times[i])
		}
		inserts = append(inserts, ins)
	}
	if len(inserts) != 13 { // 152 months in 12 inserts of 12 and one of 8
		t.Errorf("%d inserts planned, want 13", len(inserts))
	}
	manifest := struct {
		Database   string             `json:"database"`
		Window     string             `json:"window"`
		Bound      int                `json:"bound"`
		Message    string             `json:"message"`
		Migrations []schema.Migration `json:"migrations"`
		Rollup     [][]int64          `json:"rollup"`
		Rejected   [][]int64          `json:"rejected"`
	}{database, w1m.Name, maxMonthsPerInsert, chconn.TooManyPartitions, migrations, inserts, inserts}
	t.Logf("%s", servicetest.RunScript(t, "testdata/chdb_partitions.py", "split.json", manifest))
}
