package bench

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func TestCPUSecondsOfSelf(t *testing.T) {
	before, err := CPUSeconds(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until the kernel's tick counter moves (10 ms per tick).
	deadline := time.Now().Add(5 * time.Second)
	x := 0
	for time.Now().Before(deadline) {
		for i := range 1_000_000 {
			x += i
		}
		after, err := CPUSeconds(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if after > before {
			return
		}
	}
	t.Fatalf("CPU time of this process did not grow from %.2f s in 5 s of spinning (%d)", before, x)
}

func TestWriteTableRatios(t *testing.T) {
	window := func(name string, rows, groups uint64, q time.Duration) WindowResult {
		return WindowResult{Name: name, Rows: rows, Groups: groups, Query: q, Requests: 1_000_000}
	}
	results := []Result{
		{Pipeline: PipelineRollup, Partitions: 4, Events: 1_000_000, Elapsed: 10 * time.Second,
			ConsumerCPU: 4, HasConsumer: true, ClickHouseCPU: 1, HasClickHouse: true, DiskBytes: 2e6,
			Windows: []WindowResult{window("1m", 200, 100, 40*time.Millisecond), window("1h", 40, 10, 4*time.Millisecond)}},
		{Pipeline: PipelineEngine, Partitions: 4, Events: 1_000_000, Elapsed: 20 * time.Second,
			ClickHouseCPU: 10, HasClickHouse: true, DiskBytes: 1e6, Problems: []string{"1m: off by one"}, WantRequests: 1_000_000,
			Windows: []WindowResult{
				{Name: "1m", Rows: 100, Groups: 100, Query: 10 * time.Millisecond, Requests: 999_999},
				window("1h", 10, 10, 2*time.Millisecond),
			}},
	}
	// header, separator, 2 results, 1 ratio
	lines := tableLines(t, 5, func(w io.Writer) error { return WriteTable(w, results) })
	for _, want := range []struct {
		line  int
		cells []string
	}{
		{2, []string{"| usage-rollup | 4 | 100000 | 4.00 | 1.00 | 5.00 | 2.00 (200 / 100) | 4.00 (40 / 10) | 40.0 | 4.0 | 2.0 | yes |"}},
		{3, []string{"| CH Kafka engine | 4 | 50000 | — | 10.00 | 10.00 |", "**no**: 1m -1 req (1 differences)"}},
		{4, []string{"| *usage-rollup ÷ CH Kafka engine* | 4 | 2.00× | — | 0.10× | 0.50× | 2.00× | 4.00× | 4.00× | 2.00× | 2.00× |"}},
	} {
		for _, c := range want.cells {
			if !strings.Contains(lines[want.line], c) {
				t.Errorf("line %d = %q, want it to contain %q", want.line, lines[want.line], c)
			}
		}
	}
}

// tableLines returns the lines of the table write writes, failing the test
// unless there are n.
func tableLines(t *testing.T, n int, write func(io.Writer) error) []string {
	t.Helper()
	var b strings.Builder
	if err := write(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != n {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), n, b.String())
	}
	return lines
}
