package ingest

import (
	"strings"
	"testing"
	"time"
)

func TestLivenessFollowsProgressNotTheProcess(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	cfg := DefaultConfig()
	cfg.StallTimeout = 5 * time.Minute
	cases := []struct {
		name     string
		steps    func(s *status)
		at       time.Duration // when Live is asked, after t0
		wantLive bool
	}{
		{"just assigned, lag unknown", func(s *status) {}, time.Hour, true},
		{"lag but recent progress", func(s *status) {
			s.setEnd(0, 100)
			s.advance(0, 50, 0, 0, t0.Add(9*time.Minute))
		}, 10 * time.Minute, true},
		{"lag and no progress past the stall timeout", func(s *status) {
			s.setEnd(0, 100)
			s.advance(0, 50, 0, 0, t0.Add(time.Minute))
		}, 10 * time.Minute, false},
		{"caught up and quiet for hours", func(s *status) {
			s.setEnd(0, 100)
			s.advance(0, 100, 0, 0, t0)
		}, 5 * time.Hour, true},
		{"resumed with lag, never wrote", func(s *status) {
			s.resumed(0, 10)
			s.setEnd(0, 100)
		}, 6 * time.Minute, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &Consumer{cfg: cfg, status: newStatus()}
			c.status.assign([]int{0}, t0)
			tc.steps(c.status)
			err := c.Live(t0.Add(tc.at))
			if (err == nil) != tc.wantLive {
				t.Errorf("Live = %v, want live %v", err, tc.wantLive)
			}
			if err != nil && !strings.Contains(err.Error(), "partition 0") {
				t.Errorf("error %q does not name the partition", err)
			}
		})
	}
}

func TestReadyAfterTheFirstGeneration(t *testing.T) {
	c := &Consumer{cfg: DefaultConfig(), status: newStatus()}
	if c.Ready() == nil {
		t.Fatal("ready before joining the group")
	}
	c.status.assign(nil, time.Now()) // a generation with no partitions still counts
	if err := c.Ready(); err != nil {
		t.Fatalf("not ready after joining: %v", err)
	}
}
