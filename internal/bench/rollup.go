package bench

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Rollup is the service under test: the cmd/consumer binary with a fresh
// group and database and otherwise its defaults.
type Rollup struct {
	Binary     string
	Brokers    []string
	ClickHouse string
	Database   string
	Topic      string
	Group      string
	// Env is appended to the consumer's environment (K=V), e.g. a
	// FLUSH_INTERVAL to compare against the default.
	Env []string
	// MetricsAddr is the consumer's METRICS_ADDR, for scraping it; empty:
	// 127.0.0.1:0, a free port nobody learns.
	MetricsAddr string
}

func (r Rollup) env() []string {
	metrics := r.MetricsAddr
	if metrics == "" {
		// Port 0: runs of the benchmark never collide with a consumer a
		// developer runs on the default :9464.
		metrics = "127.0.0.1:0"
	}
	return append(append(BaseEnv(),
		"KAFKA_BROKERS="+strings.Join(r.Brokers, ","),
		"KAFKA_TOPIC="+r.Topic,
		"KAFKA_GROUP_ID="+r.Group,
		"CLICKHOUSE_ADDR="+r.ClickHouse,
		"CLICKHOUSE_DATABASE="+r.Database,
		"METRICS_ADDR="+metrics,
	), r.Env...)
}

// Migrate applies the migrations (`consumer migrate`), so that the measured
// run starts with the schema in place, as the engine's does.
func (r Rollup) Migrate(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, r.Binary, "migrate")
	cmd.Env = r.env()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("consumer migrate: %w\n%s", err, out)
	}
	return nil
}

// Start runs the consumer; its JSON log goes to logPath.
func (r Rollup) Start(logPath string) (*Process, error) {
	return StartProcess(logPath, r.env(), r.Binary)
}

// Windows says where the service's results are: the tables for stored rows
// and groups, the views (FINAL) for what analysts see.
func (r Rollup) Windows() []Window {
	var out []Window
	for _, w := range []string{"1m", "1h"} {
		table := quote(r.Database) + ".usage_rollup_" + w
		view := quote(r.Database) + ".usage_" + w
		out = append(out, Window{
			Name:    w,
			Rows:    "SELECT count() FROM " + table,
			Groups:  "SELECT count() FROM (SELECT DISTINCT window_start, " + strings.Join(dimensions, ", ") + " FROM " + table + ")",
			Sums:    "SELECT sum(requests), sum(total_tokens) FROM " + view,
			Analyst: AnalystQuery(view),
		})
	}
	return out
}
