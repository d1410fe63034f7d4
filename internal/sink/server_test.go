package sink

import (
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/chconn"
	"github.com/usage-rollup/usage-rollup/internal/schema"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/servicetest"
)

// Tests that write run against a real ClickHouse: CLICKHOUSE_ADDR, by
// default 127.0.0.1:9000 as started by scripts/clickhouse.sh. Without a
// server they skip, unless USAGE_ROLLUP_REQUIRE_SERVICES=1 (CI), which makes
// a missing server a failure.

var (
	w1m = aggregate.Window{Size: time.Minute, Name: "1m"}
	w1h = aggregate.Window{Size: time.Hour, Name: "1h"}
)

// newTestSink returns a sink with windows 1m and 1h on a fresh database,
// created and migrated as a consumer starting does, and dropped at cleanup.
func newTestSink(t *testing.T) *Sink {
	t.Helper()
	addr, db := servicetest.TempDatabase(t)
	cc := chconn.DefaultConfig()
	cc.Addr, cc.Database = []string{addr}, db
	windows := []aggregate.Window{w1m, w1h}
	c, _, err := schema.Setup(t.Context(), cc, schema.Config{Windows: windows}, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatalf("schema.Setup: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	s, err := New(c, Config{Windows: windows})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// execSQL runs a statement over the sink's connection, to break the database
// under it.
func execSQL(t *testing.T, s *Sink, stmt string) {
	t.Helper()
	if err := s.conn.(*chconn.Conn).Exec(t.Context(), stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

func write(t *testing.T, s *Sink, b *aggregate.Batch) {
	t.Helper()
	if err := s.Write(t.Context(), b); err != nil {
		t.Fatalf("Write(chunk %d, version %d): %v", b.Chunk, b.Version(), err)
	}
}

// pin fixes the sink's clock from now on.
func pin(s *Sink, at time.Time) { s.cfg.Now = func() time.Time { return at } }
