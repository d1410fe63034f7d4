package sink

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
)

// chdbScript runs the rendered migrations on the ClickHouse embedded in chDB.
const chdbScript = "../../scripts/chdb_check.py"

// TestMigrationsOnModernClickHouse checks that the migrations rendered for a
// current server (LowCardinality dimensions) run there and that the FINAL
// views sum exactly. The sink's own tests cover the 18.16 rendering against a
// real server; this covers the other branch without running a second server.
func TestMigrationsOnModernClickHouse(t *testing.T) {
	version := chdbVersion(t)
	const database = "usage_chdb"
	windows := []aggregate.Window{w1m, w1h}
	migrations, err := RenderMigrations(version, database, windows)
	if err != nil {
		t.Fatal(err)
	}
	dimension, err := DimensionType(version)
	if err != nil {
		t.Fatal(err)
	}
	if dimension != dimensionLowCardinality {
		t.Fatalf("chDB embeds ClickHouse %s, which renders %s; the check is meant for the LowCardinality branch", version, dimension)
	}
	manifest := struct {
		Database   string      `json:"database"`
		Dimension  string      `json:"dimension"`
		Windows    []string    `json:"windows"`
		Migrations []Migration `json:"migrations"`
	}{Database: database, Dimension: dimension, Migrations: migrations}
	for _, w := range windows {
		manifest.Windows = append(manifest.Windows, w.Name)
	}
	dir := t.TempDir()
	data, err := json.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "migrations.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), "python3", chdbScript, "run", dir).CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("%s run: %v", chdbScript, err)
	}
}

// TestMonthSplitOnModernClickHouse sends the INSERTs splitByMonth plans for
// rows spanning 150 months (and garbage times clamped to 1970 and 2106) to a
// current ClickHouse whose max_partitions_per_insert_block is lowered to
// maxMonthsPerInsert: each must pass, so the split's months are the server's
// partitions, and one INSERT of all the rows must fail with the message
// IsTransient treats as permanent.
func TestMonthSplitOnModernClickHouse(t *testing.T) {
	version := chdbVersion(t)
	const database = "usage_chdb"
	migrations, err := RenderMigrations(version, database, []aggregate.Window{w1m})
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
		Database   string      `json:"database"`
		Window     string      `json:"window"`
		Bound      int         `json:"bound"`
		Message    string      `json:"message"`
		Migrations []Migration `json:"migrations"`
		Rollup     [][]int64   `json:"rollup"`
		Rejected   [][]int64   `json:"rejected"`
	}{database, w1m.Name, maxMonthsPerInsert, tooManyPartitions, migrations, inserts, inserts}
	dir := t.TempDir()
	data, err := json.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "split.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), "python3", "testdata/chdb_partitions.py", dir).CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("testdata/chdb_partitions.py: %v", err)
	}
}
