package schema

import (
	"testing"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/servicetest"
)

// chdbScript runs the rendered migrations on the ClickHouse embedded in chDB.
const chdbScript = "../../scripts/chdb_check.py"

// TestMigrationsOnModernClickHouse checks that the migrations rendered for a
// current server (LowCardinality dimensions) run there and that the FINAL
// views sum exactly. The other tests here cover the 18.16 rendering against a
// real server; this covers the other branch without running a second server.
func TestMigrationsOnModernClickHouse(t *testing.T) {
	const database = "usage_chdb"
	windows := []aggregate.Window{w1m, w1h}
	version, migrations := chdbMigrations(t, database, windows)
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
	t.Logf("%s", servicetest.RunScript(t, chdbScript, "migrations.json", manifest, "run"))
}

// chdbMigrations returns the version of the ClickHouse embedded in chDB and
// the migrations rendered for it, creating database with windows.
func chdbMigrations(t *testing.T, database string, windows []aggregate.Window) (string, []Migration) {
	t.Helper()
	version := servicetest.NeedChDB(t)
	migrations, err := RenderMigrations(version, database, windows)
	if err != nil {
		t.Fatal(err)
	}
	return version, migrations
}
