package schema

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/servicetest"
)

// The analyst and alert queries in schemas/queries, and the cost views, are
// checked by running one scenario (seed statements, then queries with their
// expected rows) on both engines the SQL must work on: the ClickHouse 18.16
// server (CLICKHOUSE_ADDR) and a current ClickHouse embedded in chDB
// (scripts/chdb_queries.py). Both results are asserted here, in Go.

const (
	queriesDir        = "../../schemas/queries"
	chdbQueriesScript = "../../scripts/chdb_queries.py"
)

// sqlCase is one query run against the scenario's data.
type sqlCase struct {
	name  string   // unique label; also the file under schemas/queries when query is empty
	query string   // inline SQL instead of a file
	args  []any    // values of the ? placeholders in order: string or int
	setup []string // statements run just before the query
	// want is the result, a row per string with the columns joined by " | ";
	// a column "*" matches any value. nil skips the check (rows-read cases).
	want []string
}

func (c sqlCase) sql(t *testing.T) string {
	t.Helper()
	if c.query != "" {
		return c.query
	}
	data, err := os.ReadFile(filepath.Join(queriesDir, c.name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// caseResult is what one engine returned for a case.
type caseResult struct {
	Name     string     `json:"name"`
	Rows     [][]string `json:"rows"`
	ReadRows uint64     `json:"read_rows"` // rows read from storage
}

// engine runs setup statements and then the cases on a fresh, migrated database.
type engine struct {
	name string
	run  func(t *testing.T, setup []string, cases []sqlCase) map[string]caseResult
}

var engines = []engine{{"server", runOnServer}, {"chDB", runOnChDB}}

// runScenario runs the scenario on both engines, each in a subtest, checks
// every case that has want, and hands each engine's results to more (may be nil).
func runScenario(t *testing.T, setup []string, cases []sqlCase, more func(t *testing.T, got map[string]caseResult)) {
	t.Helper()
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			got := e.run(t, setup, cases)
			for _, c := range cases {
				if c.want != nil {
					checkRows(t, c, got[c.name])
				}
			}
			if more != nil {
				more(t, got)
			}
		})
	}
}

func checkRows(t *testing.T, c sqlCase, got caseResult) {
	t.Helper()
	ok := len(got.Rows) == len(c.want)
	for i := 0; ok && i < len(got.Rows); i++ {
		want := strings.Split(c.want[i], " | ")
		ok = len(want) == len(got.Rows[i])
		for j := 0; ok && j < len(want); j++ {
			ok = want[j] == "*" || want[j] == got.Rows[i][j]
		}
	}
	if !ok {
		var rows []string
		for _, r := range got.Rows {
			rows = append(rows, strings.Join(r, " | "))
		}
		t.Errorf("%s %v:\ngot  %d rows:\n  %s\nwant %d rows:\n  %s", c.name, c.args,
			len(rows), strings.Join(rows, "\n  "), len(c.want), strings.Join(c.want, "\n  "))
	}
}

// runOnServer migrates a fresh database with Setup, as the consumer
// does, then runs the scenario with clickhouse-go's positional binding and
// counts the rows read from the server's progress packets (18.16 has no
// query_log here).
func runOnServer(t *testing.T, setup []string, cases []sqlCase) map[string]caseResult {
	s := newTestSchema(t)
	ctx := t.Context()
	for _, stmt := range setup {
		if err := s.conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("setup on %s: %v\n%s", s.conn.Version(), err, stmt)
		}
	}
	out := make(map[string]caseResult, len(cases))
	for _, c := range cases {
		for _, stmt := range c.setup {
			if err := s.conn.Exec(ctx, stmt); err != nil {
				t.Fatalf("%s setup: %v\n%s", c.name, err, stmt)
			}
		}
		res := caseResult{Name: c.name}
		qctx := clickhouse.Context(ctx, clickhouse.WithProgress(func(p *clickhouse.Progress) { res.ReadRows += p.Rows }))
		rows, err := s.conn.Query(qctx, c.sql(t), c.args...)
		if err != nil {
			t.Fatalf("%s on %s: %v", c.name, s.conn.Version(), err)
		}
		types := rows.ColumnTypes()
		for rows.Next() {
			dest := make([]any, len(types))
			for i, ct := range types {
				dest[i] = reflect.New(ct.ScanType()).Interface()
			}
			if err := rows.Scan(dest...); err != nil {
				t.Fatalf("%s: scan: %v", c.name, err)
			}
			row := make([]string, len(dest))
			for i, d := range dest {
				row[i] = formatValue(reflect.ValueOf(d).Elem().Interface(), types[i].DatabaseTypeName())
			}
			res.Rows = append(res.Rows, row)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		_ = rows.Close()
		out[c.name] = res
	}
	return out
}

// formatValue renders a scanned value the way a current ClickHouse writes it
// in TabSeparated, so both engines' rows compare as strings. Decimals print
// without trailing zeros (decimal.Decimal's String, like current servers).
func formatValue(v any, dbType string) string {
	switch v := v.(type) {
	case time.Time:
		if dbType == "Date" {
			return v.UTC().Format(time.DateOnly)
		}
		return v.UTC().Format(time.DateTime)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}

// runOnChDB renders the migrations for chDB's ClickHouse and has
// scripts/chdb_queries.py run the scenario there.
func runOnChDB(t *testing.T, setup []string, cases []sqlCase) map[string]caseResult {
	const database = "usage_chdb_queries"
	_, migrations := chdbMigrations(t, database, []aggregate.Window{w1m, w1h})
	type scriptCase struct {
		Name  string   `json:"name"`
		Query string   `json:"query"`
		Args  []any    `json:"args"`
		Setup []string `json:"setup"`
	}
	scenario := struct {
		Database   string       `json:"database"`
		Migrations []Migration  `json:"migrations"`
		Setup      []string     `json:"setup"`
		Cases      []scriptCase `json:"cases"`
	}{Database: database, Migrations: migrations, Setup: setup}
	for _, c := range cases {
		scenario.Cases = append(scenario.Cases, scriptCase{Name: c.name, Query: c.sql(t), Args: c.args, Setup: c.setup})
	}
	stdout := servicetest.RunScript(t, chdbQueriesScript, "scenario.json", scenario)
	var report struct {
		Version string       `json:"version"`
		Results []caseResult `json:"results"`
	}
	if err := json.Unmarshal(stdout, &report); err != nil {
		t.Fatalf("%s output: %v\n%s", chdbQueriesScript, err, stdout)
	}
	t.Logf("chDB ClickHouse %s", report.Version)
	out := make(map[string]caseResult, len(report.Results))
	for _, r := range report.Results {
		out[r.Name] = r
	}
	return out
}

// usageRow is one 1m rollup row: the aggregate of a group over a chunk prefix.
type usageRow struct {
	minute                                    string // window_start, "YYYY-MM-DD hh:mm"
	workspace, key, provider, model, endpoint string
	partition                                 int32
	chunk                                     int64
	version                                   uint64
	requests, errors                          uint64
	input, text, image, cached, output        uint64 // tokens; total is input + output
	latencySum, latencyMax                    uint64
}

// seedColumns is spelled out rather than taken from the writer's column list
// (internal/sink) so that a new rollup column (it gets its default here) does not break the seeds.
const seedColumns = "window_start, workspace_id, project_id, api_key_id, provider, model, endpoint, topic, " +
	"`partition`, chunk, version, requests, errors, input_tokens, input_text_tokens, input_image_tokens, " +
	"input_cached_tokens, output_tokens, total_tokens, latency_ms_sum, latency_ms_max, inconsistent_events, written_at"

// insertUsage returns an INSERT of rows into a rollup table, window_start as
// given. Seeds are INSERT ... SELECT: clickhouse-go hangs on an INSERT ...
// VALUES statement against 18.16.
func insertUsage(table string, rows ...usageRow) string {
	selects := make([]string, 0, len(rows))
	for _, r := range rows {
		selects = append(selects, fmt.Sprintf("SELECT toDateTime('%s:00', 'UTC'), '%s', 'proj', '%s', '%s', '%s', '%s', "+
			"'usage-events', toInt32(%d), toInt64(%d), %s, toUInt64(0), toDateTime('2024-06-01 00:00:00', 'UTC')",
			r.minute, r.workspace, r.key, r.provider, r.model, r.endpoint, r.partition, r.chunk,
			uint64s(r.version, r.requests, r.errors, r.input, r.text, r.image, r.cached, r.output, r.input+r.output,
				r.latencySum, r.latencyMax)))
	}
	return fmt.Sprintf("INSERT INTO %s (%s)\n%s", table, seedColumns, strings.Join(selects, "\nUNION ALL "))
}

// uint64s renders UInt64 literals. Typed, because a current ClickHouse
// rejects a UNION ALL whose same-named literal columns (0, 1, ...) differ in type.
func uint64s(vs ...uint64) string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = fmt.Sprintf("toUInt64(%d)", v)
	}
	return strings.Join(out, ", ")
}

// deriveHourly fills usage_rollup_1h from the current 1m rows the way the
// consumer would: one row per hour, group and chunk, versioned by the highest
// version among its minutes.
const deriveHourly = "INSERT INTO usage_rollup_1h (" + seedColumns + ")\n" +
	"SELECT toStartOfHour(window_start), workspace_id, project_id, api_key_id, provider, model, endpoint, topic, " +
	"`partition`, chunk, max(version), sum(requests), sum(errors), sum(input_tokens), sum(input_text_tokens), " +
	"sum(input_image_tokens), sum(input_cached_tokens), sum(output_tokens), sum(total_tokens), sum(latency_ms_sum), " +
	"max(latency_ms_max), sum(inconsistent_events), max(written_at)\n" +
	"FROM usage_rollup_1m FINAL\n" +
	"GROUP BY toStartOfHour(window_start), workspace_id, project_id, api_key_id, provider, model, endpoint, topic, " +
	"`partition`, chunk"

// progressRow is what a partition records when closed_through advances
// (usage_progress_log, migration 0006; read through usage_progress_topic).
func progressRow(topic string, partition int32, closedThrough, advancedAt string) string {
	return fmt.Sprintf("INSERT INTO usage_progress_log (topic, `partition`, closed_through, max_event_time, "+
		"committed_offset, idle, advanced_at) SELECT '%s', %d, toDateTime(%s, 'UTC'), toDateTime(%s, 'UTC'), 1000, 0, "+
		"toDateTime(%s, 'UTC')", topic, partition, closedThrough, closedThrough, advancedAt)
}

// usageSeed is two days of usage around a price change at 2024-05-02 12:00
// and an alerting cut-off: closed_through is 13:00:30 on partition 0 and
// 13:20 on partition 1, so the last complete hour is 12:00-13:00 and the
// last complete minute 12:59. Rows from 13:00 on are partial.
var usageSeed = []usageRow{
	// 2024-05-01 12:00, "the same hour the day before".
	{"2024-05-01 12:05", "ws_acme", "key_a1", "openai", "gpt-image-1", "images.generations", 0, 0, 110, 4, 0, 1000, 600, 400, 0, 16640, 20000, 6000},
	{"2024-05-01 12:10", "ws_beta", "key_b1", "openai", "gpt-4o-mini", "chat.completions", 0, 0, 120, 10, 1, 12000, 0, 0, 8192, 3000, 8000, 1200},
	{"2024-05-01 12:20", "ws_gamma", "key_g1", "bfl", "flux-pro", "images.generations", 1, 0, 130, 5, 0, 0, 0, 0, 0, 0, 25000, 7000},
	{"2024-05-01 12:30", "ws_delta", "key_d1", "openai", "gpt-4o-mini", "chat.completions", 1, 0, 140, 1, 0, 100, 0, 0, 0, 20, 500, 500},
	// 2024-05-02 11:00, first gpt-image-1 price.
	{"2024-05-02 11:05", "ws_acme", "key_a1", "openai", "gpt-image-1", "images.generations", 0, 1, 210, 2, 0, 500, 300, 200, 100, 8320, 10000, 5500},
	{"2024-05-02 11:30", "ws_acme", "key_a2", "openai", "gpt-image-1", "images.generations", 0, 1, 220, 1, 1, 50, 40, 10, 0, 0, 300, 300},
	// 2024-05-02 12:00, second prices; ws_beta is silent, ws_delta too.
	{"2024-05-02 12:05", "ws_acme", "key_a1", "openai", "gpt-image-1", "images.generations", 0, 1, 230, 3, 0, 900, 500, 400, 200, 12480, 15000, 5200},
	{"2024-05-02 12:10", "ws_gamma", "key_g1", "bfl", "flux-pro", "images.generations", 1, 1, 240, 10, 2, 0, 0, 0, 0, 0, 70000, 8000},
	{"2024-05-02 12:15", "ws_echo", "key_e1", "acme", "unpriced-model", "embeddings", 1, 1, 250, 7, 0, 700, 700, 0, 0, 0, 700, 150},
	{"2024-05-02 12:40", "ws_acme", "key_a1", "openai", "gpt-image-1", "images.generations", 0, 1, 260, 4, 2, 0, 0, 0, 0, 0, 400, 100},
	{"2024-05-02 12:50", "ws_acme", "key_a1", "openai", "gpt-image-1", "images.generations", 0, 1, 270, 20, 2, 0, 0, 0, 0, 0, 2000, 100},
	{"2024-05-02 12:52", "ws_gamma", "key_g1", "bfl", "flux-pro", "images.generations", 0, 1, 300, 10, 0, 0, 0, 0, 0, 0, 1000, 100},
	{"2024-05-02 12:52", "ws_gamma", "key_g1", "bfl", "flux-pro", "images.generations", 1, 1, 310, 10, 2, 0, 0, 0, 0, 0, 1000, 100},
	{"2024-05-02 12:55", "ws_acme", "key_a1", "openai", "gpt-image-1", "images.generations", 0, 1, 280, 20, 1, 0, 0, 0, 0, 0, 2000, 100},
	{"2024-05-02 12:58", "ws_echo", "key_e1", "openai", "gpt-4o-mini", "chat.completions", 1, 1, 290, 3, 3, 0, 0, 0, 0, 0, 300, 100},
	// 2024-05-02 13:00, after closed_through: partial.
	{"2024-05-02 13:00", "ws_acme", "key_a1", "openai", "gpt-image-1", "images.generations", 0, 1, 320, 20, 10, 0, 0, 0, 0, 0, 2000, 100},
	{"2024-05-02 13:05", "ws_beta", "key_b1", "openai", "gpt-4o-mini", "chat.completions", 0, 1, 330, 6, 0, 600, 0, 0, 0, 100, 600, 100},
}

// staleSeed are shorter prefixes (lower versions) of rows above, written
// last as a late retry would: the views and FINAL reads must ignore them.
var staleSeed = []string{
	insertUsage("usage_rollup_1m",
		usageRow{"2024-05-02 12:50", "ws_acme", "key_a1", "openai", "gpt-image-1", "images.generations", 0, 1, 5, 1000, 1000, 1e6, 0, 0, 0, 1e6, 1, 1},
		usageRow{"2024-05-02 12:52", "ws_gamma", "key_g1", "bfl", "flux-pro", "images.generations", 1, 1, 5, 1, 0, 0, 0, 0, 0, 0, 1, 1}),
	insertUsage("usage_rollup_1h",
		usageRow{"2024-05-02 12:00", "ws_acme", "key_a1", "openai", "gpt-image-1", "images.generations", 0, 1, 5, 1000, 0, 1e6, 0, 0, 0, 1e6, 1, 1},
		usageRow{"2024-05-01 12:00", "ws_beta", "key_b1", "openai", "gpt-4o-mini", "chat.completions", 0, 0, 5, 1, 0, 0, 0, 0, 0, 0, 1, 1}),
}

// querySetup seeds usage, prices and progress for TestQueries.
func querySetup() []string {
	setup := []string{insertUsage("usage_rollup_1m", usageSeed...), deriveHourly}
	setup = append(setup, staleSeed...)
	setup = append(setup, insertPrices(priceSeed...)...)
	return append(setup,
		progressRow("usage-events", 0, "'2024-05-02 13:00:30'", "'2024-05-02 13:01:00'"),
		progressRow("usage-events", 1, "'2024-05-02 13:20:00'", "'2024-05-02 13:20:10'"))
}

// TestQueries runs every query in schemas/queries on seeded data, on the
// 18.16 server and on chDB, and checks the rows. Expected values are worked
// out by hand from usageSeed and priceSeed; stale rows must not show.
func TestQueries(t *testing.T) {
	const from, to = "2024-05-01 00:00:00", "2024-05-03 00:00:00"
	cases := []sqlCase{
		{name: "daily_usage.sql", args: []any{from, to}, want: []string{
			"2024-05-01 | ws_acme | openai | gpt-image-1 | 4 | 0 | 1000 | 16640 | 17640 | 5000 | 6000",
			"2024-05-01 | ws_beta | openai | gpt-4o-mini | 10 | 1 | 12000 | 3000 | 15000 | 800 | 1200",
			"2024-05-01 | ws_delta | openai | gpt-4o-mini | 1 | 0 | 100 | 20 | 120 | 500 | 500",
			"2024-05-01 | ws_gamma | bfl | flux-pro | 5 | 0 | 0 | 0 | 0 | 5000 | 7000",
			// 31700 ms over 70 requests, partial hour 13:00 included.
			"2024-05-02 | ws_acme | openai | gpt-image-1 | 70 | 16 | 1450 | 20800 | 22250 | 452.9 | 5500",
			"2024-05-02 | ws_beta | openai | gpt-4o-mini | 6 | 0 | 600 | 100 | 700 | 100 | 100",
			"2024-05-02 | ws_echo | acme | unpriced-model | 7 | 0 | 700 | 0 | 700 | 100 | 150",
			"2024-05-02 | ws_echo | openai | gpt-4o-mini | 3 | 3 | 0 | 0 | 0 | 100 | 100",
			"2024-05-02 | ws_gamma | bfl | flux-pro | 30 | 4 | 0 | 0 | 0 | 2400 | 8000",
		}},
		{name: "top_api_keys.sql", args: []any{"2024-05-02 00:00:00", "2024-05-02 13:00:00", 3}, want: []string{
			"key_a1 | ws_acme | 22200 | 1400 | 20800 | 49 | 5 | 1",
			"key_e1 | ws_echo | 700 | 700 | 0 | 10 | 3 | 2",
			"key_a2 | ws_acme | 50 | 50 | 0 | 1 | 1 | 1",
		}},
		{name: "input_token_mix.sql", args: []any{from, to}, want: []string{
			"ws_acme | openai | gpt-image-1 | 2450 | 1440 | 1010 | 0 | 58.78 | 41.22",
			"ws_beta | openai | gpt-4o-mini | 12600 | 0 | 0 | 12600 | 0 | 0",
			"ws_delta | openai | gpt-4o-mini | 100 | 0 | 0 | 100 | 0 | 0",
			"ws_echo | acme | unpriced-model | 700 | 700 | 0 | 0 | 100 | 0",
		}},
		{name: "error_rates.sql", args: []any{from, to}, want: []string{
			"images.generations | openai | gpt-image-1 | 74 | 16 | 21.62",
			"chat.completions | openai | gpt-4o-mini | 20 | 4 | 20",
			"images.generations | bfl | flux-pro | 35 | 4 | 11.43",
			"embeddings | acme | unpriced-model | 7 | 0 | 0",
		}},
		{name: "cached_token_share.sql", args: []any{from, to}, want: []string{
			"ws_acme | openai | gpt-image-1 | 2450 | 300 | 12.24 | 0",
			"ws_beta | openai | gpt-4o-mini | 12600 | 8192 | 65.02 | 0",
			"ws_delta | openai | gpt-4o-mini | 100 | 0 | 0 | 0",
			"ws_echo | acme | unpriced-model | 700 | 0 | 0 | 0",
		}},
		// The arithmetic is in prices_test.go (TestCostViews) and docs/analysts.md.
		{name: "cost.sql", args: []any{from, to}, want: []string{
			"ws_acme | openai | gpt-image-1 | 74 | 2450 | 37440 | 0.0054 | 0.000325 | 0.0093 | 1.39776 | 0 | 1.412785 | 0 | 0",
			"ws_beta | openai | gpt-4o-mini | 16 | 12600 | 3100 | 0.0006612 | 0.0006144 | 0 | 0.00186 | 0 | 0.0031356 | 0 | 0",
			"ws_delta | openai | gpt-4o-mini | 1 | 100 | 20 | 0.000015 | 0 | 0 | 0.000012 | 0 | 0.000027 | 0 | 0",
			"ws_echo | acme | unpriced-model | 7 | 700 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 7 | 700",
			"ws_echo | openai | gpt-4o-mini | 3 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0",
			"ws_gamma | bfl | flux-pro | 35 | 0 | 0 | 0 | 0 | 0 | 0 | 1.29 | 1.29 | 0 | 0",
		}},
		// Last complete hour 2024-05-02 12:00: ws_beta went from 10 to 0
		// (its 13:05 traffic is in the partial hour); ws_delta from 1 to 0.
		{name: "alert_zero_requests.sql", args: []any{2}, want: []string{
			"ws_beta | 2024-05-02 12:00:00 | 0 | 10",
		}},
		{name: "alert_zero_requests.sql, min 1", query: readQuery(t, "alert_zero_requests.sql"), args: []any{1}, want: []string{
			"ws_beta | 2024-05-02 12:00:00 | 0 | 10",
			"ws_delta | 2024-05-02 12:00:00 | 0 | 1",
		}},
		// Complete minutes 12:45-12:59. 12:40 is too old, 13:00 (10 of 20
		// failed) is partial, 12:55 is exactly 5%, 12:58 has 3 requests;
		// flux-pro at 12:52 is two partitions' rows, 2 errors in 20.
		{name: "alert_error_rate.sql", args: []any{15, 5, 5}, want: []string{
			"2024-05-02 12:50:00 | images.generations | openai | gpt-image-1 | 20 | 2 | 10",
			"2024-05-02 12:52:00 | images.generations | bfl | flux-pro | 20 | 2 | 10",
		}},
		{name: "alert_error_rate.sql, 5 minutes, 3 requests, 4%", query: readQuery(t, "alert_error_rate.sql"),
			args: []any{5, 3, 4}, want: []string{
				"2024-05-02 12:55:00 | images.generations | openai | gpt-image-1 | 20 | 1 | 5",
				"2024-05-02 12:58:00 | chat.completions | openai | gpt-4o-mini | 3 | 3 | 100",
			}},
		// usage-events stopped in 2024; "lagging" moves but is 30 minutes
		// behind; "fresh" is within 10 minutes.
		{name: "alert_freshness.sql", args: []any{10}, setup: []string{
			progressRow("fresh", 0, "now() - 60", "now() - 5"),
			progressRow("lagging", 0, "now() - 1800", "now() - 20"),
			progressRow("lagging", 1, "now() - 600", "now() - 10"),
			progressRow("stalled", 0, "now() - 7200", "now() - 7200"),
		}, want: []string{
			"lagging | * | * | 2 | 30 | lagging",
			"stalled | * | * | 1 | 120 | stalled",
			"usage-events | * | * | 2 | * | stalled",
		}},
	}
	files, err := filepath.Glob(filepath.Join(queriesDir, "*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no queries in %s: %v", queriesDir, err)
	}
	for _, f := range files {
		if !slices.ContainsFunc(cases, func(c sqlCase) bool { return c.name == filepath.Base(f) }) {
			t.Errorf("%s has no case in TestQueries", f)
		}
	}
	runScenario(t, querySetup(), cases, nil)
}

func readQuery(t *testing.T, file string) string {
	t.Helper()
	return sqlCase{name: file}.sql(t)
}

// TestQueriesReadHourlyRows shows why hourly and daily reads use usage_1h:
// the same daily query over a week of a month of minutes reads far fewer rows
// from usage_1h than from usage_1m, with the same result. It also shows why
// the alerts read usage_rollup_<w> FINAL with a window_start filter: 18.16
// does not push a filter into a view, so the view form reads every row.
func TestQueriesReadHourlyRows(t *testing.T) {
	// Two workspaces, every minute of May 2024; ws_b fails 1 request of 2.
	const minutes = 31 * 24 * 60
	bulk := fmt.Sprintf("INSERT INTO usage_rollup_1m (%s)\n"+
		"SELECT toDateTime('2024-05-01 00:00:00', 'UTC') + 60 * intDiv(number, 2), if(number %% 2 = 0, 'ws_a', 'ws_b'), "+
		"'proj', 'key', 'openai', 'gpt-4o', 'chat.completions', 'usage-events', 0, 0, 1, 2, number %% 2, "+
		"200, 200, 0, 0, 100, 300, 300, 200, 0, toDateTime('2024-06-01 00:00:00', 'UTC')\n"+
		"FROM numbers(%d)", seedColumns, 2*minutes)
	setup := []string{bulk, deriveHourly,
		progressRow("usage-events", 0, "'2024-05-20 10:05:30'", "'2024-05-20 10:05:40'")}

	var daily []string
	for d := 8; d < 15; d++ {
		daily = append(daily,
			fmt.Sprintf("2024-05-%02d | ws_a | openai | gpt-4o | 2880 | 0 | 288000 | 144000 | 432000 | 150 | 200", d),
			fmt.Sprintf("2024-05-%02d | ws_b | openai | gpt-4o | 2880 | 1440 | 288000 | 144000 | 432000 | 150 | 200", d))
	}
	var alerts []string
	for m := 50; m < 65; m++ { // 15 complete minutes before 10:05
		ts := time.Date(2024, 5, 20, 9, m, 0, 0, time.UTC).Format(time.DateTime)
		alerts = append(alerts, ts+" | chat.completions | openai | gpt-4o | 4 | 1 | 25")
	}
	week := []any{"2024-05-08 00:00:00", "2024-05-15 00:00:00"}
	dailySQL, alertSQL := readQuery(t, "daily_usage.sql"), readQuery(t, "alert_error_rate.sql")
	cases := []sqlCase{
		{name: "daily from usage_1h", query: dailySQL, args: week, want: daily},
		{name: "daily from usage_1m", query: replaceOnce(t, dailySQL, "FROM usage_1h", "FROM usage_1m"), args: week, want: daily},
		{name: "alert from usage_rollup_1m FINAL", query: alertSQL, args: []any{15, 1, 5}, want: alerts},
		{name: "alert from usage_1m", query: replaceOnce(t, alertSQL, "FROM usage_rollup_1m FINAL", "FROM usage_1m"),
			args: []any{15, 1, 5}, want: alerts},
	}
	runScenario(t, setup, cases, func(t *testing.T, got map[string]caseResult) {
		hourly, minutely := got["daily from usage_1h"].ReadRows, got["daily from usage_1m"].ReadRows
		table, view := got["alert from usage_rollup_1m FINAL"].ReadRows, got["alert from usage_1m"].ReadRows
		t.Logf("rows read: daily week from usage_1h %d, from usage_1m %d; error-rate alert from usage_rollup_1m FINAL %d, from usage_1m %d (table: %d minute rows, %d hour rows)",
			hourly, minutely, table, view, 2*minutes, 2*31*24)
		if hourly == 0 || hourly*10 > minutely {
			t.Errorf("daily query read %d rows from usage_1h and %d from usage_1m; want at least 10x fewer from usage_1h", hourly, minutely)
		}
		if table == 0 || table > view {
			t.Errorf("alert read %d rows from usage_rollup_1m FINAL and %d from usage_1m; want no more from the table", table, view)
		}
	})
}

func replaceOnce(t *testing.T, s, old, repl string) string {
	t.Helper()
	if strings.Count(s, old) != 1 {
		t.Fatalf("want exactly one %q in the query", old)
	}
	return strings.Replace(s, old, repl, 1)
}
