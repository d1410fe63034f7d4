package main

import (
	"io"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/loadgen"
)

// The stream must cover exactly two whole hours of event time, so that the
// windows and the group counts are the same from run to run.
func TestGeneratorSpansTwoWholeHours(t *testing.T) {
	now := time.Date(2026, 11, 30, 0, 17, 0, 0, time.UTC)
	for _, n := range []int{1_000, 50_000} {
		cfg, err := parseConfig([]string{"-events", strconv.Itoa(n), "-pipelines", "engine"}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		exp, err := loadgen.Generate(generatorConfig(cfg, now), func(_, _ []byte) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		first := now.Truncate(time.Hour).Add(-3 * time.Hour)
		if exp.MinEventTime.Before(first) || !exp.MaxEventTime.Before(first.Add(eventSpan)) {
			t.Errorf("n=%d: events span %s .. %s, want within [%s, %s)", n, exp.MinEventTime, exp.MaxEventTime, first, first.Add(eventSpan))
		}
		if exp.Accepted != n || exp.Sent != n {
			t.Errorf("n=%d: sent %d, accepted %d: the stream must be clean", n, exp.Sent, exp.Accepted)
		}
	}
}

func TestParseConfigRejects(t *testing.T) {
	for _, args := range [][]string{
		{"-events", "0", "-pipelines", "engine"},
		{"-pipelines", "rollup"}, // no -consumer
		{"-pipelines", "kafka"},
		{"-partitions", "4,x", "-pipelines", "engine"},
		{"-consumer-env", "FLUSH_INTERVAL", "-pipelines", "engine"},
		{"-mode", "live", "-consumer", "c"},
		{"-mode", "steady"}, // no -consumer
		{"-mode", "steady", "-consumer", "c", "-rate", "0"},
		{"-mode", "steady", "-consumer", "c", "-duration", "0s"},
		{"-cpu-profile", "10ms", "-consumer", "c"},
	} {
		if _, err := parseConfig(args, io.Discard); err == nil {
			t.Errorf("parseConfig(%q) = nil error", args)
		}
	}
}

func TestPartitionsDefaultPerMode(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []int
	}{
		{[]string{"-consumer", "c"}, []int{4, 16}},
		{[]string{"-mode", "steady", "-consumer", "c"}, []int{4, 16, 64}},
		{[]string{"-mode", "steady", "-consumer", "c", "-partitions", "16"}, []int{16}},
	} {
		cfg, err := parseConfig(tc.args, io.Discard)
		if err != nil {
			t.Fatalf("parseConfig(%q): %v", tc.args, err)
		}
		if !slices.Equal(cfg.partitions, tc.want) {
			t.Errorf("parseConfig(%q): partitions %v, want %v", tc.args, cfg.partitions, tc.want)
		}
	}
}
