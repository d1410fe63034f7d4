package sink

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
)

// Tests in this package run against a real ClickHouse: CLICKHOUSE_ADDR, by
// default 127.0.0.1:9000 as started by scripts/clickhouse.sh. Without a
// server they skip, unless USAGE_ROLLUP_REQUIRE_SERVICES=1 (CI), which makes
// a missing server a failure.

func requireServices() bool { return os.Getenv("USAGE_ROLLUP_REQUIRE_SERVICES") == "1" }

func serverAddr(t *testing.T) string {
	t.Helper()
	addr := os.Getenv("CLICKHOUSE_ADDR")
	if addr == "" {
		addr = "127.0.0.1:9000"
	}
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		if requireServices() {
			t.Fatalf("ClickHouse at %s is required (USAGE_ROLLUP_REQUIRE_SERVICES=1): %v", addr, err)
		}
		t.Skipf("no ClickHouse at %s (start one with scripts/clickhouse.sh start): %v", addr, err)
	}
	_ = c.Close()
	return addr
}

func randomName(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

var (
	w1m = aggregate.Window{Size: time.Minute, Name: "1m"}
	w1h = aggregate.Window{Size: time.Hour, Name: "1h"}
)

// testConfig returns a config for a fresh, not yet created database.
func testConfig(t *testing.T) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Addr = []string{serverAddr(t)}
	cfg.Database = randomName(t, "usage_test_")
	cfg.Windows = []aggregate.Window{w1m, w1h}
	return cfg
}

// openSink opens a sink on cfg and drops its database at cleanup.
func openSink(t *testing.T, cfg Config) *Sink {
	t.Helper()
	s, err := Open(t.Context(), cfg, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.conn.Exec(ctx, "DROP DATABASE IF EXISTS "+s.database); err != nil {
			t.Errorf("drop database %s: %v", cfg.Database, err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// newTestSink opens a migrated sink on a fresh database with windows 1m and 1h.
func newTestSink(t *testing.T) *Sink {
	t.Helper()
	return openSink(t, testConfig(t))
}

// queryUint runs a query returning one UInt64 (sum, count) in the sink's database.
func queryUint(t *testing.T, s *Sink, query string, args ...any) uint64 {
	t.Helper()
	var v uint64
	if err := s.conn.QueryRow(t.Context(), query, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return v
}

func write(t *testing.T, s *Sink, b *aggregate.Batch) {
	t.Helper()
	if err := s.Write(t.Context(), b); err != nil {
		t.Fatalf("Write(chunk %d, version %d): %v", b.Chunk, b.Version(), err)
	}
}
