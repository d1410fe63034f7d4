//go:build faults

package faults

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// monitorInterval is how often I4 samples the committed offsets.
const monitorInterval = 200 * time.Millisecond

// offsetMonitor checks I4 while a case runs: the group's committed offsets
// never go backwards and never pass the durable progress in ClickHouse.
type offsetMonitor struct {
	s    *scenario
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu         sync.Mutex
	epoch      int // bumped by allowReset; a poll spanning a bump is dropped
	last       map[int]int64
	backwards  []string
	ahead      []string
	samples    int
	errs       int
	firstError string
}

func startMonitor(s *scenario) *offsetMonitor {
	m := &offsetMonitor{s: s, stop: make(chan struct{}), done: make(chan struct{}), last: map[int]int64{}}
	go m.run()
	return m
}

func (m *offsetMonitor) run() {
	defer close(m.done)
	tick := time.NewTicker(monitorInterval)
	defer tick.Stop()
	for {
		m.sample()
		select {
		case <-m.stop:
			return
		case <-tick.C:
		}
	}
}

func (m *offsetMonitor) sample() {
	s := m.s
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n := int(s.partitions.Load())
	m.mu.Lock()
	epoch := m.epoch
	m.mu.Unlock()
	// Kafka first, then ClickHouse: see methodNotes in report_test.go.
	committed, err := s.adm.committed(ctx, s.group, s.topic, n)
	if err == nil {
		var prog map[int]chunkProgress
		prog, err = s.ch.progress(ctx, s.topic)
		if err == nil {
			m.record(epoch, committed, prog)
			return
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.errs++
	if m.firstError == "" {
		m.firstError = err.Error()
	}
}

// maxViolations bounds what the report lists per kind.
const maxViolations = 10

func (m *offsetMonitor) record(epoch int, committed map[int]int64, prog map[int]chunkProgress) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if epoch != m.epoch {
		return // the test moved the offsets during this poll
	}
	m.samples++
	at := time.Now().Format("15:04:05.000")
	for p, c := range committed {
		if c < 0 {
			continue
		}
		if prev, ok := m.last[p]; ok && c < prev && len(m.backwards) < maxViolations {
			m.backwards = append(m.backwards, fmt.Sprintf("%s partition %d: committed %d after %d", at, p, c, prev))
		}
		m.last[p] = c
		if next := prog[p].next; c > next && len(m.ahead) < maxViolations {
			m.ahead = append(m.ahead, fmt.Sprintf("%s partition %d: committed %d but durable only up to %d", at, p, c, next))
		}
	}
}

// allowReset forgets the last committed offsets: the test moved them back
// itself (a group reset). Call it after the reset; polls that overlap the
// call are dropped.
func (m *offsetMonitor) allowReset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.epoch++
	m.last = map[int]int64{}
}

// finish stops the monitor and records I4 (once).
func (m *offsetMonitor) finish() {
	m.once.Do(func() {
		close(m.stop)
		<-m.done
		m.mu.Lock()
		defer m.mu.Unlock()
		s := m.s
		if s.t.Skipped() {
			return
		}
		var diffs []string
		diffs = append(diffs, m.backwards...)
		diffs = append(diffs, m.ahead...)
		if m.samples == 0 {
			diffs = append(diffs, fmt.Sprintf("no sample succeeded (%d errors, first: %s)", m.errs, m.firstError))
		}
		detail := fmt.Sprintf("%d samples every %s", m.samples, monitorInterval)
		if m.errs > 0 {
			detail += fmt.Sprintf(" (%d polls failed while a service was down)", m.errs)
		}
		s.res.check(s.t, "I4 commits monotonic and <= durable+1", diffs, detail)
	})
}
