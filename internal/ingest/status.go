package ingest

import (
	"fmt"
	"sort"
	"sync"
	"time"
)

// status is what the loop knows about its own progress, shared by the
// partition goroutines (writers), the end-offset poller and the health
// endpoints (readers).
type status struct {
	mu     sync.Mutex
	joined bool // a generation was joined since start
	parts  map[int]*partStatus
}

type partStatus struct {
	durable     int64     // next offset after the last durable write (the committed offset)
	end         int64     // log end offset, from the poller; -1 until known
	lastAdvance time.Time // when durable last moved, or the assignment time
	watermarkMs int64     // event-time watermark of the last durable write
	closedMs    int64     // closed_through last written for the partition
	maxEventMs  int64     // newest event time written
}

func newStatus() *status { return &status{parts: map[int]*partStatus{}} }

// assign starts tracking partitions of a new generation.
func (s *status) assign(partitions []int, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.joined = true
	clear(s.parts)
	for _, p := range partitions {
		s.parts[p] = &partStatus{durable: -1, end: -1, lastAdvance: now}
	}
}

// release stops tracking every partition (the generation ended).
func (s *status) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.parts)
}

// advance records a durable write up to next (exclusive).
func (s *status) advance(partition int, next, watermarkMs, maxEventMs int64, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.parts[partition]
	if !ok {
		return
	}
	if next > p.durable {
		p.durable, p.lastAdvance = next, now
	}
	p.watermarkMs = max(p.watermarkMs, watermarkMs)
	p.maxEventMs = max(p.maxEventMs, maxEventMs)
}

// resumed records where a partition resumes before anything new is written,
// so lag is known from the start.
func (s *status) resumed(partition int, next int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.parts[partition]; ok && p.durable < 0 {
		p.durable = next
	}
}

func (s *status) setEnd(partition int, end int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.parts[partition]; ok {
		p.end = end
	}
}

func (s *status) setClosed(partition int, closedMs int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.parts[partition]; ok {
		p.closedMs = closedMs
	}
}

// caughtUp reports whether everything up to the log end is durable.
func (s *status) caughtUp(partition int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.parts[partition]
	return ok && p.end >= 0 && p.durable >= p.end
}

// partitionView is a snapshot of one partition for metrics and health.
type partitionView struct {
	partition   int
	lag         int64 // -1 when unknown
	stalledFor  time.Duration
	watermarkMs int64
	closedMs    int64
	maxEventMs  int64
}

func (s *status) snapshot(now time.Time) (joined bool, views []partitionView) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, p := range s.parts {
		lag := int64(-1)
		if p.end >= 0 && p.durable >= 0 {
			lag = max(p.end-p.durable, 0)
		}
		views = append(views, partitionView{id, lag, now.Sub(p.lastAdvance), p.watermarkMs, p.closedMs, p.maxEventMs})
	}
	sort.Slice(views, func(i, j int) bool { return views[i].partition < views[j].partition })
	return s.joined, views
}

// Live reports an error when some assigned partition has lag but made no
// durable progress for longer than stall: a consumer stuck in a state that
// a restart may clear. A process that merely runs is not enough.
func (c *Consumer) Live(now time.Time) error {
	_, views := c.status.snapshot(now)
	for _, v := range views {
		if v.lag > 0 && v.stalledFor > c.cfg.StallTimeout {
			return fmt.Errorf("partition %d has lag %d and made no progress for %s", v.partition, v.lag, v.stalledFor.Round(time.Second))
		}
	}
	return nil
}

// Ready reports an error until the consumer joined its group once.
func (c *Consumer) Ready() error {
	if joined, _ := c.status.snapshot(time.Now()); !joined {
		return fmt.Errorf("consumer group %q not joined yet", c.cfg.GroupID)
	}
	return nil
}
