// Package servicetest holds what the tests that run the consumer against
// real services share: the service addresses, the consumer binary and a
// buffer for a process's output. The end-to-end tests and the
// fault-injection suite both use it.
package servicetest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
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
	s := Services{
		Brokers:    strings.Split(EnvOr("KAFKA_BROKERS", "127.0.0.1:9092"), ","),
		ClickHouse: EnvOr("CLICKHOUSE_ADDR", "127.0.0.1:9000"),
	}
	for _, addr := range []string{s.Brokers[0], s.ClickHouse} {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			if os.Getenv("USAGE_ROLLUP_REQUIRE_SERVICES") == "1" {
				t.Fatalf("service %s unreachable: %v (start them with scripts/test.sh)", addr, err)
			}
			t.Skipf("service %s unreachable: %v", addr, err)
		}
		c.Close()
	}
	return s
}

// EnvOr returns the environment variable k, or def when it is unset or empty.
func EnvOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// BuildConsumer builds cmd/consumer (pkg is its path relative to the
// calling test's directory) into a temporary directory. A TestMain calls
// it once and calls cleanup after the tests ran.
func BuildConsumer(pkg string) (binary string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "usage-rollup-consumer")
	if err != nil {
		return "", nil, err
	}
	binary = filepath.Join(dir, "consumer")
	build := exec.Command("go", "build", "-o", binary, pkg)
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
