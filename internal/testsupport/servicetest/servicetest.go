// Package servicetest holds what the tests that run against real services
// share: the service addresses and the skip-or-fail rule, a scratch
// ClickHouse database, chDB, the consumer binary and a buffer for a
// process's output. The end-to-end tests, the fault-injection suite and the
// ClickHouse packages' tests use it.
package servicetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Services are the addresses of the Kafka broker and the ClickHouse server,
// from KAFKA_BROKERS and CLICKHOUSE_ADDR (scripts/test.sh sets both).
type Services struct {
	Brokers    []string
	ClickHouse string
}

// Need returns the services, or skips the test when one is unreachable;
// with USAGE_ROLLUP_REQUIRE_SERVICES=1 (as in CI) it fails instead.
func Need(t testing.TB) Services {
	t.Helper()
	return Services{Brokers: NeedKafka(t), ClickHouse: NeedClickHouse(t)}
}

// NeedKafka returns the brokers (KAFKA_BROKERS), for tests that need no
// ClickHouse; it skips or fails like Need.
func NeedKafka(t testing.TB) []string {
	t.Helper()
	brokers := strings.Split(EnvOr("KAFKA_BROKERS", "127.0.0.1:9092"), ",")
	Reach(t, brokers[0])
	return brokers
}

// NeedClickHouse returns the ClickHouse address (CLICKHOUSE_ADDR), for tests
// that need no Kafka; it skips or fails like Need.
func NeedClickHouse(t testing.TB) string {
	t.Helper()
	addr := EnvOr("CLICKHOUSE_ADDR", "127.0.0.1:9000")
	Reach(t, addr)
	return addr
}

// Reach skips the test when nothing accepts a TCP connection at addr, or
// fails it when USAGE_ROLLUP_REQUIRE_SERVICES=1.
func Reach(t testing.TB, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		Unavailable(t, "service %s unreachable: %v (start them with scripts/test.sh)", addr, err)
		return
	}
	c.Close()
}

// Unavailable ends a test that cannot run because a service, file or tool
// it needs is missing: it skips, or fails when USAGE_ROLLUP_REQUIRE_SERVICES=1
// (as in scripts/test.sh and CI), so that a missing service cannot turn a
// run green. Every test that needs a service ends through it.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("USAGE_ROLLUP_REQUIRE_SERVICES") == "1" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// TempDatabase returns the ClickHouse address and the name of a database
// that does not exist yet, and drops that database when the test ends. It
// skips or fails like NeedClickHouse.
func TempDatabase(t testing.TB) (addr, database string) {
	t.Helper()
	addr = NeedClickHouse(t)
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	database = "usage_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := clickhouse.Open(&clickhouse.Options{Protocol: clickhouse.Native, Addr: []string{addr},
			Auth: clickhouse.Auth{Username: "default"}, DialTimeout: 5 * time.Second})
		if err == nil {
			err = c.Exec(ctx, "DROP DATABASE IF EXISTS `"+database+"`")
			_ = c.Close()
		}
		if err != nil {
			t.Errorf("drop database %s: %v", database, err)
		}
	})
	return addr, database
}

// EnvOr returns the environment variable k, or def when it is unset or empty.
func EnvOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// BuildConsumer builds cmd/consumer with the faults build tag (pkg is its path relative to the
// calling test's directory) into a temporary directory. A TestMain calls
// it once and calls cleanup after the tests ran.
func BuildConsumer(pkg string) (binary string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "usage-rollup-consumer")
	if err != nil {
		return "", nil, err
	}
	binary = filepath.Join(dir, "consumer")
	// The faults tag builds in the test failpoints (FAULT_CRASH_AFTER_WRITES)
	// that the shipped binary does not have.
	build := exec.Command("go", "build", "-tags", "faults", "-o", binary, pkg)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("build consumer: %w", err)
	}
	return binary, func() { os.RemoveAll(dir) }, nil
}

// SyncBuffer collects a process's output; the process writes while the
// test reads.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// RunWithConsumer is a TestMain body: it builds the consumer at pkg (with the
// faults tag) into *binary, runs the tests, then after (if not nil) with the
// tests' exit code, which it may change, and cleans up. It returns the code
// for os.Exit.
func RunWithConsumer(m *testing.M, pkg string, binary *string, after func(code int) int) int {
	bin, cleanup, err := BuildConsumer(pkg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	*binary = bin
	code := m.Run()
	if after != nil {
		code = after(code)
	}
	return code
}

// RowQuerier is the part of a ClickHouse connection QueryUint uses; the
// schema's and the sink's Conn both have it.
type RowQuerier interface {
	QueryRow(ctx context.Context, query string, args ...any) driver.Row
}

// QueryUint runs a query returning one UInt64 (a sum, a count) and fails the
// test if it cannot.
func QueryUint(t testing.TB, c RowQuerier, query string, args ...any) uint64 {
	t.Helper()
	var v uint64
	if err := c.QueryRow(t.Context(), query, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return v
}
