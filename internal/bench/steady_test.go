package bench

import (
	"io"
	"os"
	"testing"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/events"
)

// A marker must be an event the consumer accepts, or freshness would wait
// for rows that never come.
func TestMarkerEventIsValid(t *testing.T) {
	at := time.Date(2026, 11, 30, 1, 2, 3, 456e6, time.UTC)
	var ev events.Event
	if err := events.NewDecoder(events.DefaultConfig()).Decode(markerEvent("mk_run_p16_new_7", at), at, &ev); err != nil {
		t.Fatalf("marker rejected: %v", err)
	}
	if string(ev.APIKeyID) != "mk_run_p16_new_7" || string(ev.WorkspaceID) != MarkerWorkspace {
		t.Errorf("marker decoded as api_key_id %q, workspace_id %q", ev.APIKeyID, ev.WorkspaceID)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		values []time.Duration
		q      float64
		want   time.Duration
	}{
		{d, 0.5, 50 * time.Millisecond},
		{d, 0.99, 99 * time.Millisecond},
		{d, 1, 100 * time.Millisecond},
		{d[:60], 0.99, 60 * time.Millisecond}, // 60 samples: p99 is the largest
		{d[:1], 0.5, time.Millisecond},
		{nil, 0.5, 0},
	} {
		if got := Percentile(tc.values, tc.q); got != tc.want {
			t.Errorf("Percentile(%d values, %g) = %s, want %s", len(tc.values), tc.q, got, tc.want)
		}
	}
}

func TestReadMemoryOfSelf(t *testing.T) {
	m, err := ReadMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS == 0 || m.Peak < m.RSS {
		t.Errorf("RSS %d, peak %d: want 0 < RSS <= peak", m.RSS, m.Peak)
	}
}

func TestWriteSteadyTableRatios(t *testing.T) {
	result := func(name string, inserts1m, parts uint64, p50 time.Duration) SteadyResult {
		return SteadyResult{Consumer: name, Partitions: 16, Window: 10 * time.Second, Events: 2000,
			Inserts:   map[string]uint64{"usage_rollup_1m": inserts1m, "usage_chunks": inserts1m},
			Parts:     map[string]uint64{"usage_rollup_1m": parts, "usage_chunks": parts},
			Latencies: []time.Duration{p50}, ConsumerCPU: 1, ClickHouseCPU: 2, HasClickHouse: true, Memory: Memory{RSS: 64 << 20}}
	}
	results := []SteadyResult{result("old", 320, 320, 6*time.Second), result("new", 20, 20, 5*time.Second)}
	// header, separator, 2 results, 1 ratio
	lines := tableLines(t, 5, func(w io.Writer) error { return WriteSteadyTable(w, results) })
	for _, want := range []struct {
		line int
		cell string
	}{
		{2, "| old | 16 | 200.0 | 32.00 | 0.00 | 32.00 | 64.00 | 32.00 | 0.00 | 32.00 | 64.00 | 6.00 | 6.00 | 0.100 | 0.200 | 64 | 1/1 |"},
		{4, "| *new ÷ old* | 16 | 1.00× | 0.06× | — | 0.06× | 0.06× | 0.06× | — | 0.06× | 0.06× | 0.83× | 0.83× | 1.00× | 1.00× | 1.00× |  |"},
	} {
		if lines[want.line] != want.cell {
			t.Errorf("line %d = %q\nwant       %q", want.line, lines[want.line], want.cell)
		}
	}
}
