package schema

import (
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/chconn"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/servicetest"
)

// Tests that need a server run against a real ClickHouse: CLICKHOUSE_ADDR,
// by default 127.0.0.1:9000 as started by scripts/clickhouse.sh. Without a
// server they skip, unless USAGE_ROLLUP_REQUIRE_SERVICES=1 (CI), which makes
// a missing server a failure.

const testTopic = "usage-events"

var (
	w1m = aggregate.Window{Size: time.Minute, Name: "1m"}
	w1h = aggregate.Window{Size: time.Hour, Name: "1h"}
)

// testConfig returns the connection settings of a fresh database that does
// not exist yet and is dropped at cleanup.
func testConfig(t *testing.T) chconn.Config {
	t.Helper()
	addr, db := servicetest.TempDatabase(t)
	cfg := chconn.DefaultConfig()
	cfg.Addr, cfg.Database = []string{addr}, db
	return cfg
}

// openSchema runs Setup on cc, as a consumer starting does, and closes the
// connection at cleanup.
func openSchema(t *testing.T, cc chconn.Config, windows ...aggregate.Window) *Schema {
	t.Helper()
	c, s, err := Setup(t.Context(), cc, Config{Windows: windows}, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return s
}

// newTestSchema returns a migrated schema on a fresh database with windows 1m and 1h.
func newTestSchema(t *testing.T) *Schema {
	t.Helper()
	return openSchema(t, testConfig(t), w1m, w1h)
}
