package schema

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
)

func TestDimensionType(t *testing.T) {
	tests := []struct {
		version string
		want    string
	}{
		{"18.16.1", "String"},
		{"19.17.4.11", "String"},
		{"20.1.2.4", "LowCardinality(String)"},
		{"20.12", "LowCardinality(String)"},
		{"23.8.16.40", "LowCardinality(String)"},
		{"26.9.2.1", "LowCardinality(String)"},
		{" 24.3.1 ", "LowCardinality(String)"},
	}
	for _, tt := range tests {
		got, err := DimensionType(tt.version)
		if err != nil || got != tt.want {
			t.Errorf("DimensionType(%q) = %q, %v; want %q", tt.version, got, err, tt.want)
		}
	}
	for bad, want := range map[string]string{
		"":     "want major.minor[.patch...]",
		"18":   "want major.minor[.patch...]",
		"x.1":  "bad major",
		"18.x": "bad minor",
		"-1.2": "bad major",
		"1.-2": "bad minor",
	} {
		got, err := DimensionType(bad)
		if want = fmt.Sprintf("parse ClickHouse version %q: %s", bad, want); err == nil || err.Error() != want {
			t.Errorf("DimensionType(%q) = %q, %v; want error %q", bad, got, err, want)
		}
	}
}

func TestRenderMigrations(t *testing.T) {
	windows := []aggregate.Window{w1m, w1h}
	old, err := RenderMigrations("18.16.1", "usage_rollup", windows)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range old {
		names = append(names, m.Name)
		for _, stmt := range m.Statements {
			if strings.Contains(stmt, "{{") || strings.Contains(stmt, "LowCardinality") || strings.Contains(stmt, "--") {
				t.Errorf("%s: unrendered placeholder, comment or LowCardinality on 18.16:\n%s", m.Name, stmt)
			}
			// 18.16 has no ADD COLUMN IF NOT EXISTS: Migrate treats an
			// existing column as success instead (isDuplicateColumn).
			if !strings.Contains(stmt, "IF NOT EXISTS") && !strings.Contains(stmt, "IF EXISTS") && !strings.Contains(stmt, " "+addColumnPlain+" ") {
				t.Errorf("%s: statement is not idempotent:\n%s", m.Name, stmt)
			}
		}
	}
	want := []string{
		"0001_schema_migrations", "0002_usage_settings", "0003_usage_chunks", "0004_usage_rejected",
		"0005_usage_rollup@1m", "0005_usage_rollup@1h", "0006_usage_progress",
		"0010_usage_prices", "0011_usage_cost@1m", "0011_usage_cost@1h", "0012_usage_settings_segment_inputs",
		"0013_usage_compactions", "0014_usage_compact@1m", "0014_usage_compact@1h", "0015_usage_seals",
		"0016_usage_segment_frontier@1m", "0016_usage_segment_frontier@1h",
	}
	if !slices.Equal(names, want) {
		t.Errorf("names = %q, want %q", names, want)
	}
	rollup1h := strings.Join(old[5].Statements, "\n")
	for _, s := range []string{"`usage_rollup`.usage_rollup_1h", "`usage_rollup`.usage_1h", "workspace_id        String,"} {
		if !strings.Contains(rollup1h, s) {
			t.Errorf("0005_usage_rollup@1h lacks %q:\n%s", s, rollup1h)
		}
	}

	modern, err := RenderMigrations("24.8.4.13", "usage_rollup", windows)
	if err != nil {
		t.Fatal(err)
	}
	modern1m := strings.Join(modern[4].Statements, "\n")
	if got := strings.Count(modern1m, "LowCardinality(String)"); got != 6 {
		t.Errorf("modern usage_rollup_1m has %d LowCardinality columns, want the 6 dimensions", got)
	}
	if got := strings.Count(modern1m, counterCodec); got != 12 {
		t.Errorf("modern usage_rollup_1m has %d codec counters, want the 12 measures", got)
	}
	if !strings.Contains(modern1m, "window_start        "+timeCodec) {
		t.Errorf("modern usage_rollup_1m window_start has no codec:\n%s", modern1m)
	}
	for _, m := range modern {
		for _, stmt := range m.Statements {
			if !strings.Contains(stmt, "IF NOT EXISTS") && !strings.HasPrefix(stmt, "DROP TABLE IF EXISTS") {
				t.Errorf("modern %s: statement is not idempotent:\n%s", m.Name, stmt)
			}
		}
	}
	for _, m := range old {
		for _, stmt := range m.Statements {
			if strings.Contains(stmt, "CODEC") || strings.Contains(stmt, "{{") {
				t.Errorf("18.16 migration %s has a codec or an unreplaced placeholder:\n%s", m.Name, stmt)
			}
		}
	}
}

// TestRenderMigrationsErrors changes one thing at a time in a set of files
// that renders, and checks that rendering fails for that reason: the error
// names the offending input and, where one file is at fault, the file.
func TestRenderMigrationsErrors(t *testing.T) {
	good := &fstest.MapFile{Data: []byte("CREATE TABLE IF NOT EXISTS {{database}}.t (a {{dimension}}) ENGINE = Log;")}
	window := &fstest.MapFile{Data: []byte("CREATE TABLE IF NOT EXISTS {{database}}.t_{{window}} (a String) ENGINE = Log;")}
	base := fstest.MapFS{"clickhouse/0001_a.sql": good, "clickhouse/0002_b.window.sql": window}
	if got, err := renderMigrations(base, "18.16.1", "db", []aggregate.Window{w1m}); err != nil || len(got) != 2 {
		t.Fatalf("the unchanged files: renderMigrations = %d migrations, %v; want 2 and no error", len(got), err)
	}
	with := func(name string, f *fstest.MapFile) fstest.MapFS {
		fsys := maps.Clone(base)
		fsys[name] = f
		return fsys
	}
	sql := func(text string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(text)} }
	tests := []struct {
		name     string
		files    fstest.MapFS
		database string
		version  string
		windows  []aggregate.Window
		want     string // the whole error
	}{
		{"bad database", base, "a-b", "18.16.1", nil,
			`render migrations: database "a-b" is not a plain identifier`},
		{"database with a backquote", base, "a`b", "18.16.1", nil,
			"render migrations: database \"a`b\" is not a plain identifier"},
		{"bad window name", base, "db", "18.16.1", []aggregate.Window{{Size: time.Minute, Name: "1m; DROP"}},
			`render migrations: window name "1m; DROP" is not canonical`},
		{"bad version", base, "db", "eighteen", nil,
			`parse ClickHouse version "eighteen": want major.minor[.patch...]`},
		{"window placeholder outside a window file", with("clickhouse/0001_a.sql",
			sql("CREATE TABLE IF NOT EXISTS t_{{window}} (a String) ENGINE = Log;")), "db", "18.16.1", nil,
			`render migrations: 0001_a.sql: unknown or misplaced placeholder near "{{window}} (a String"`},
		{"unknown placeholder", with("clickhouse/0001_a.sql",
			sql("CREATE TABLE IF NOT EXISTS {{db}}.t (a String) ENGINE = Log;")), "db", "18.16.1", nil,
			`render migrations: 0001_a.sql: unknown or misplaced placeholder near "{{db}}.t (a String) "`},
		{"duplicate version", with("clickhouse/0001_c.sql", good), "db", "18.16.1", nil,
			"render migrations: 0001_a.sql and 0001_c.sql share version 0001"},
		{"bad file name", with("clickhouse/1_c.sql", good), "db", "18.16.1", nil,
			"render migrations: 1_c.sql: want NNNN_name.sql"},
		{"version zero", with("clickhouse/0000_c.sql", good), "db", "18.16.1", nil,
			"render migrations: 0000_c.sql: want NNNN_name.sql with NNNN >= 0001"},
		{"empty file", with("clickhouse/0003_c.sql", sql("-- nothing;\n")), "db", "18.16.1", nil,
			"render migrations: 0003_c.sql has no statements"},
		{"unterminated quote", with("clickhouse/0003_c.sql", sql("SELECT 'a;")), "db", "18.16.1", nil,
			"render migrations: 0003_c.sql: unterminated ' quote"},
	}
	for _, tt := range tests {
		windows := tt.windows
		if windows == nil {
			windows = []aggregate.Window{w1m}
		}
		got, err := renderMigrations(tt.files, tt.version, tt.database, windows)
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: renderMigrations = %d migrations, %v; want error %q", tt.name, len(got), err, tt.want)
		}
	}
}

func TestSplitStatements(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"SELECT 1;\nSELECT 2;", []string{"SELECT 1", "SELECT 2"}},
		{"-- a; comment\nSELECT 1 -- trailing; comment\n;", []string{"SELECT 1"}},
		{"SELECT ';' AS `a;b`, \"x;\"", []string{"SELECT ';' AS `a;b`, \"x;\""}},
		{"SELECT 'it\\'s;'; SELECT 2", []string{"SELECT 'it\\'s;'", "SELECT 2"}},
		{" ;\n; ", nil},
	}
	for _, tt := range tests {
		got, err := splitStatements(tt.in)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("splitStatements(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}
