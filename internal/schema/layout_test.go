package schema

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/testsupport/servicetest"
)

const (
	skew     = 24 * time.Hour
	msgBytes = 1 << 20
)

func TestNewLayout(t *testing.T) {
	tests := []struct {
		name string
		l    Layout
		want string
	}{
		{"defaults: 50000 x 2 windows <= 200000, no cut possible",
			NewLayout(50_000, 200_000, []string{"1m", "1h"}, skew, msgBytes), ""},
		{"at the bound, no cut possible", NewLayout(1000, 2000, []string{"1h", "1m"}, skew, msgBytes), ""},
		{"one over the bound", NewLayout(1000, 1999, []string{"1h", "1m"}, skew, msgBytes),
			"max_groups=1999;windows=1m,1h;max_future_skew=24h0m0s;max_message_bytes=1048576"},
		{"windows listed by size", NewLayout(50_000, 100, []string{"1d", "5m", "1m", "1h"}, time.Hour, 4096),
			"max_groups=100;windows=1m,5m,1h,1d;max_future_skew=1h0m0s;max_message_bytes=4096"},
	}
	for _, tt := range tests {
		if tt.l.SegmentInputs != tt.want {
			t.Errorf("%s: SegmentInputs = %q, want %q", tt.name, tt.l.SegmentInputs, tt.want)
		}
	}
}

// layoutCase is one EnsureLayout call on a recorded topic: wantErr lists
// parts of the expected error, nil for success.
type layoutCase struct {
	name    string
	layout  Layout
	wantErr []string
}

func checkLayouts(t *testing.T, s *Schema, topic string, cases []layoutCase) {
	t.Helper()
	for _, tc := range cases {
		err := s.EnsureLayout(t.Context(), topic, tc.layout)
		if tc.wantErr == nil {
			if err != nil {
				t.Errorf("%s: %s: EnsureLayout = %v, want success", topic, tc.name, err)
			}
			continue
		}
		if !errors.Is(err, ErrLayoutChanged) {
			t.Errorf("%s: %s: EnsureLayout = %v, want ErrLayoutChanged", topic, tc.name, err)
			continue
		}
		for _, part := range tc.wantErr {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("%s: %s: error %q lacks %q", topic, tc.name, err, part)
			}
		}
	}
}

const reroll = ", or roll the topic up into a new, empty database (CLICKHOUSE_DATABASE)"

func TestEnsureLayoutCutsPossible(t *testing.T) {
	s := newTestSchema(t)
	// 50000 offsets x 2 windows can exceed 50000 groups: chunks may be cut.
	layout := NewLayout(50_000, 50_000, []string{"1m", "1h"}, skew, msgBytes)
	if err := s.EnsureLayout(t.Context(), testTopic, layout); err != nil {
		t.Fatalf("first EnsureLayout: %v", err)
	}
	checkLayouts(t, s, testTopic, []layoutCase{
		{"same settings", NewLayout(50_000, 50_000, []string{"1h", "1m"}, skew, msgBytes), nil},
		{"chunk size", NewLayout(10_000, 50_000, []string{"1m", "1h"}, skew, msgBytes), []string{
			`CHUNK_SIZE changed from 50000 to 10000 for topic "usage-events": rows are keyed by chunk, so offsets ` +
				`already written would be keyed under other chunks when re-read, and counted twice; ` +
				`restore CHUNK_SIZE=50000` + reroll}},
		{"windows", NewLayout(50_000, 50_000, []string{"1m", "1h", "1d"}, skew, msgBytes), []string{
			`ROLLUP_WINDOWS changed from 1m,1h to 1m,1h,1d for topic "usage-events": chunks of this topic can be cut ` +
				`into segments (CHUNK_SIZE x windows > MAX_GROUPS_PER_PARTITION), and where depends on these settings ` +
				`(they decide which events are accepted and how many groups a chunk has); rows are keyed by segment, ` +
				`so offsets already written would be keyed under other segments when re-read, and counted twice; ` +
				`restore ROLLUP_WINDOWS=1m,1h` + reroll}},
		{"future skew", NewLayout(50_000, 50_000, []string{"1m", "1h"}, time.Hour, msgBytes), []string{
			"MAX_FUTURE_SKEW changed from 24h0m0s to 1h0m0s", "restore MAX_FUTURE_SKEW=24h0m0s" + reroll}},
		{"group cap and message size", NewLayout(50_000, 60_000, []string{"1m", "1h"}, skew, 2*msgBytes), []string{
			"MAX_GROUPS_PER_PARTITION changed from 50000 to 60000 and MAX_MESSAGE_BYTES changed from 1048576 to 2097152",
			"restore MAX_GROUPS_PER_PARTITION=50000 and MAX_MESSAGE_BYTES=1048576" + reroll}},
		{"cuts no longer possible", NewLayout(50_000, 100_000, []string{"1m", "1h"}, skew, msgBytes), []string{
			`MAX_GROUPS_PER_PARTITION changed from 50000 to 100000 for topic "usage-events": chunks of this topic ` +
				`could be cut into segments, and now CHUNK_SIZE x windows <= MAX_GROUPS_PER_PARTITION would cut none`,
			"restore MAX_GROUPS_PER_PARTITION=50000" + reroll}},
	})
	var inputs string
	var version uint8
	if err := s.conn.QueryRow(t.Context(), "SELECT segment_inputs, layout_version FROM "+s.database+".usage_settings").
		Scan(&inputs, &version); err != nil {
		t.Fatal(err)
	}
	if inputs != layout.SegmentInputs || version != layoutVersion {
		t.Errorf("recorded segment_inputs %q, layout_version %d; want %q, %d", inputs, version, layout.SegmentInputs, layoutVersion)
	}
	if got := servicetest.QueryUint(t, s.conn, "SELECT count() FROM "+s.database+".usage_settings"); got != 1 {
		t.Errorf("usage_settings has %d rows, want 1 (a mismatch records nothing)", got)
	}
}

func TestEnsureLayoutCutsImpossible(t *testing.T) {
	s := newTestSchema(t)
	// 1000 offsets x 2 windows never reach 200000 groups: no chunk is cut, so
	// the group cap, windows and decoder limits may change while that holds.
	if err := s.EnsureLayout(t.Context(), testTopic, NewLayout(1000, 200_000, []string{"1m", "1h"}, skew, msgBytes)); err != nil {
		t.Fatalf("first EnsureLayout: %v", err)
	}
	three := []string{"1m", "5m", "1h"}
	checkLayouts(t, s, testTopic, []layoutCase{
		{"a window added", NewLayout(1000, 200_000, three, skew, msgBytes), nil},
		{"a smaller group cap", NewLayout(1000, 3000, three, skew, msgBytes), nil},
		{"decoder limits", NewLayout(1000, 3000, three, time.Minute, 1000), nil},
		{"chunk size", NewLayout(1500, 200_000, []string{"1m", "1h"}, skew, msgBytes), []string{
			"CHUNK_SIZE changed from 1000 to 1500", "restore CHUNK_SIZE=1000" + reroll}},
		{"cuts become possible", NewLayout(1000, 2999, three, skew, msgBytes), []string{
			`segment cuts became possible for topic "usage-events": it was rolled up with CHUNK_SIZE x windows <= ` +
				`MAX_GROUPS_PER_PARTITION, so no chunk was cut into segments, and now CHUNK_SIZE=1000 x 3 windows ` +
				`(ROLLUP_WINDOWS=1m,5m,1h) > MAX_GROUPS_PER_PARTITION=2999; rows are keyed by segment, so offsets ` +
				`already written would be keyed under other segments when re-read, and counted twice; ` +
				`set MAX_GROUPS_PER_PARTITION >= 3000 or list fewer ROLLUP_WINDOWS` + reroll}},
	})
	if got := servicetest.QueryUint(t, s.conn, "SELECT count() FROM "+s.database+".usage_settings"); got != 1 {
		t.Errorf("usage_settings has %d rows, want 1 (allowed changes and mismatches record nothing)", got)
	}
}

func TestEnsureLayoutLegacyRow(t *testing.T) {
	s := newTestSchema(t)
	// A row recorded before migration 0012 (or by an older consumer during a
	// rolling upgrade): only chunk_size and max_groups are known.
	if err := s.conn.Exec(t.Context(), "INSERT INTO "+s.database+".usage_settings (topic, chunk_size, max_groups, created_at) "+
		"SELECT '"+testTopic+"', 50000, 200000, now()"); err != nil { // VALUES over Exec hangs 18.16
		t.Fatal(err)
	}
	checkLayouts(t, s, testTopic, []layoutCase{
		{"same chunk size and group cap", NewLayout(50_000, 200_000, []string{"1m", "1h"}, skew, msgBytes), nil},
		{"other windows and limits, not comparable", NewLayout(50_000, 200_000, []string{"1m"}, time.Hour, 100), nil},
		{"group cap", NewLayout(50_000, 300_000, []string{"1m", "1h"}, skew, msgBytes), []string{
			`MAX_GROUPS_PER_PARTITION changed from 200000 to 300000 for topic "usage-events": it decides where chunks ` +
				`are cut into segments and rows are keyed by segment, so offsets already written would be keyed under ` +
				`other segments when re-read, and counted twice; restore MAX_GROUPS_PER_PARTITION=200000` + reroll}},
		{"chunk size", NewLayout(10_000, 200_000, []string{"1m", "1h"}, skew, msgBytes), []string{
			"CHUNK_SIZE changed from 50000 to 10000", "restore CHUNK_SIZE=50000" + reroll}},
	})
	if got := servicetest.QueryUint(t, s.conn, "SELECT count() FROM "+s.database+".usage_settings"); got != 1 {
		t.Errorf("usage_settings has %d rows, want the legacy row only", got)
	}
}

func TestEnsureLayoutNeedsNewLayout(t *testing.T) {
	s := newTestSchema(t)
	err := s.EnsureLayout(t.Context(), testTopic, Layout{ChunkSize: 50_000, MaxGroups: 200_000})
	if err == nil || !strings.Contains(err.Error(), "build it with schema.NewLayout") {
		t.Errorf("EnsureLayout of a Layout literal = %v, want an error asking for NewLayout", err)
	}
	if got := servicetest.QueryUint(t, s.conn, "SELECT count() FROM "+s.database+".usage_settings"); got != 0 {
		t.Errorf("usage_settings has %d rows, want none", got)
	}
}
