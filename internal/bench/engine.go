package bench

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Engine is the comparison pipeline built from ClickHouse alone: a Kafka
// table engine and one materialized view per window, each parsing the JSON
// line and summing into a SummingMergeTree table. It is at-least-once: the
// engine commits after a block is written, so a crash in between replays the
// block and double counts it.
//
// What it takes on ClickHouse 18.16 (Debian's):
//   - A Kafka table streams into materialized views attached directly to it
//     only, not through a Null table or a view's target, so each window has
//     its own view and parses the line itself.
//   - Without kafka_row_delimiter = '\n' the messages of a batch run together.
//   - A group without committed offsets starts at the log end, and streaming
//     starts as soon as the first view is attached: the table is created with
//     its group at the log end, both views are attached, the table is
//     detached, the group rewound to the log start and the table attached.
//   - DROP DATABASE fails while the Kafka table or its views exist.
//
// The views keep the measures a SummingMergeTree can keep exactly: all sums,
// not latency_ms_max, nor the service's inconsistent_events and late_events.
type Engine struct {
	Database string
	Topic    string
	Group    string
	// Brokers is the broker list as the ClickHouse server reaches it.
	Brokers []string
	// Consumers is kafka_num_consumers.
	Consumers int
}

// engineWindows maps a window name to the ClickHouse function that aligns an
// event time to it.
var engineWindows = []struct{ name, align string }{{"1m", "toStartOfMinute"}, {"1h", "toStartOfHour"}}

// engineMeasures are the summed columns and how each is read from the line.
// visitParam* finds the first occurrence of the key at any depth, which for
// the generator's snake_case events is the one field of that name.
var engineMeasures = []struct{ name, expr string }{
	{"requests", "count()"},
	{"errors", "countIf(visitParamExtractUInt(line, 'status_code') >= 400)"},
	{"input_tokens", "sum(visitParamExtractUInt(line, 'input_tokens'))"},
	{"input_text_tokens", "sum(visitParamExtractUInt(line, 'text_tokens'))"},
	{"input_image_tokens", "sum(visitParamExtractUInt(line, 'image_tokens'))"},
	{"input_cached_tokens", "sum(visitParamExtractUInt(line, 'cached_tokens'))"},
	{"output_tokens", "sum(visitParamExtractUInt(line, 'output_tokens'))"},
	// total_tokens is optional in the contract: input + output when absent.
	{"total_tokens", "sum(if(visitParamHas(line, 'total_tokens'), visitParamExtractUInt(line, 'total_tokens'), " +
		"visitParamExtractUInt(line, 'input_tokens') + visitParamExtractUInt(line, 'output_tokens')))"},
	{"latency_ms_sum", "sum(visitParamExtractUInt(line, 'latency_ms'))"},
}

var dimensions = []string{"workspace_id", "project_id", "api_key_id", "provider", "model", "endpoint"}

// eventTime parses the timestamp: RFC 3339 with any offset, or integer epoch
// milliseconds. 18.16 evaluates both branches of if() for every row, and an
// unparseable value fails the whole block even where the other branch is
// taken. The empty string happens to parse (as 2000-01-01), but the string
// branch gets an explicit placeholder for epoch events rather than rely on it.
const eventTime = "if(visitParamExtractString(line, 'timestamp') = '', " +
	"toDateTime(intDiv(visitParamExtractUInt(line, 'timestamp'), 1000)), " +
	"parseDateTimeBestEffort(if(visitParamExtractString(line, 'timestamp') = '', '2000-01-01 00:00:00', " +
	"visitParamExtractString(line, 'timestamp'))))"

func (e Engine) table(window string) string { return quote(e.Database) + ".rollup_" + window }
func (e Engine) source() string             { return quote(e.Database) + ".kafka_events" }
func (e Engine) view(window string) string  { return quote(e.Database) + ".mv_" + window }

// Setup creates the tables and views and leaves the Kafka table detached with
// the group at the log start: Start then begins the measured run.
func (e Engine) Setup(ctx context.Context, ch *ClickHouse, k *Kafka, start, end Offsets) error {
	stmts := []string{"CREATE DATABASE " + quote(e.Database)}
	for _, w := range engineWindows {
		var cols strings.Builder
		cols.WriteString("window_start DateTime")
		for _, d := range dimensions {
			cols.WriteString(", " + d + " String")
		}
		for _, m := range engineMeasures {
			cols.WriteString(", " + m.name + " UInt64")
		}
		stmts = append(stmts, "CREATE TABLE "+e.table(w.name)+" ("+cols.String()+")\n"+
			"ENGINE = SummingMergeTree() PARTITION BY toYYYYMM(window_start)\n"+
			"ORDER BY (window_start, "+strings.Join(dimensions, ", ")+")")
	}
	if err := ch.ExecAll(ctx, stmts...); err != nil {
		return err
	}
	if err := k.Commit(ctx, e.Group, e.Topic, end); err != nil {
		return err
	}
	stmts = []string{"CREATE TABLE " + e.source() + " (line String) ENGINE = Kafka SETTINGS " +
		"kafka_broker_list = '" + strings.Join(e.Brokers, ",") + "', kafka_topic_list = '" + e.Topic + "', " +
		"kafka_group_name = '" + e.Group + "', kafka_format = 'TSV', kafka_row_delimiter = '\\n', " +
		fmt.Sprintf("kafka_num_consumers = %d", max(e.Consumers, 1))}
	for _, w := range engineWindows {
		stmts = append(stmts, "CREATE MATERIALIZED VIEW "+e.view(w.name)+" TO "+e.table(w.name)+" AS\n"+e.selectFor(w.align))
	}
	stmts = append(stmts, "DETACH TABLE "+e.source())
	if err := ch.ExecAll(ctx, stmts...); err != nil {
		return err
	}
	// The engine's consumers leave the group on DETACH; Commit retries until
	// the broker sees the group empty.
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return k.Commit(ctx, e.Group, e.Topic, start)
}

func (e Engine) selectFor(align string) string {
	var b strings.Builder
	b.WriteString("SELECT " + align + "(" + eventTime + ") AS window_start")
	for _, d := range dimensions {
		fmt.Fprintf(&b, ", visitParamExtractString(line, '%s') AS %s", d, d)
	}
	for _, m := range engineMeasures {
		fmt.Fprintf(&b, ",\n  %s AS %s", m.expr, m.name)
	}
	// Seal records of the rollup consumer (empty values) are not events.
	b.WriteString("\nFROM " + e.source() + "\nWHERE line != ''\nGROUP BY window_start, " + strings.Join(dimensions, ", "))
	return b.String()
}

// Start attaches the Kafka table: streaming into the views begins.
func (e Engine) Start(ctx context.Context, ch *ClickHouse) error {
	return ch.Exec(ctx, "ATTACH TABLE "+e.source())
}

// Stop drops the views and the Kafka table, so the engine stops polling the
// broker; the rollup tables stay for inspection.
func (e Engine) Stop(ctx context.Context, ch *ClickHouse) error {
	var stmts []string
	for _, w := range engineWindows {
		stmts = append(stmts, "DROP TABLE IF EXISTS "+e.view(w.name))
	}
	return ch.ExecAll(ctx, append(stmts, "DROP TABLE IF EXISTS "+e.source())...)
}

// Windows says where the engine's results are.
func (e Engine) Windows() []Window {
	var out []Window
	for _, w := range engineWindows {
		t := e.table(w.name)
		out = append(out, Window{
			Name:    w.name,
			Rows:    "SELECT count() FROM " + t,
			Groups:  "SELECT count() FROM (SELECT DISTINCT window_start, " + strings.Join(dimensions, ", ") + " FROM " + t + ")",
			Sums:    "SELECT sum(requests), sum(total_tokens) FROM " + t,
			Analyst: AnalystQuery(t),
		})
	}
	return out
}
