//go:build faults

package faults

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestF10RebalanceStorm scales the group between one and three consumers
// every few seconds (joins, SIGTERM leaves and kill -9 evictions) while the
// stream is produced, and raises the partition count from 6 to 9 in the
// middle. The second half of the stream is produced after the increase by a
// fresh producer, so every event id keeps one partition (ids repeated across
// partitions are outside the dedup horizon by design).
func TestF10RebalanceStorm(t *testing.T) {
	s := newScenario(t, "F10", "rebalance storm (1 <-> 3 consumers every few s) + partitions 6 -> 9", 6)
	period := pick(3*time.Second, 4*time.Second)
	base := s.start()
	var extra []*consumer
	stop := make(chan struct{})
	stormDone := make(chan int)
	go func() {
		changes := 0
		defer func() { stormDone <- changes }()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(period):
			}
			if len(extra) == 0 {
				extra = append(extra, s.start(), s.start())
			} else {
				for j, c := range extra {
					if (i+j)%2 == 0 {
						c.kill9()
					} else if _, err := c.Term(40 * time.Second); err != nil {
						t.Error(err)
					}
				}
				extra = nil
			}
			changes++
		}
	}()
	prod := s.produce(genConfig(110, pick(6_000, 20_000), pick(1_000.0, 1_200.0)))
	s.wait(prod, 3*time.Minute)
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	if err := s.adm.addPartitions(ctx, s.topic, 9); err != nil {
		t.Fatal(err)
	}
	cancel()
	s.partitions.Store(9)
	grownAt := time.Now()
	prod2 := s.produce(genConfig(210, pick(6_000, 20_000), pick(1_000.0, 1_200.0)))
	s.wait(prod2, 3*time.Minute)
	close(stop)
	changes := <-stormDone
	s.markHealed()
	s.res.note(t, "%d membership changes every %s; partitions 6 -> 9 %.0fs before the storm ended", changes, period, time.Since(grownAt).Seconds())
	s.waitCaughtUp(recoveryBound)
	s.verify(verifyOpts{})
	s.stopAll(append(extra, base)...)
}

// resetToEarliest waits for the stopped group to empty (resetGroup needs
// that), resets it to the earliest offsets and tells the offset monitor that
// the move back is intended.
func (s *scenario) resetToEarliest() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	for {
		members, state, err := s.adm.groupMembers(ctx, s.group)
		if err == nil && members == 0 {
			break
		}
		if ctx.Err() != nil {
			s.t.Fatalf("group not empty after the consumers stopped: %d members, state %s, %v", members, state, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := s.adm.resetGroup(ctx, s.group, s.topic, int(s.partitions.Load())); err != nil {
		s.t.Fatal(err)
	}
	s.mon.allowReset()
}

// TestF12GroupResetAndReplay consumes the stream, stops the group, resets it
// to the earliest offset (an offset commit with generation -1 while the group
// is empty) and replays the whole topic: the sums must not change (I7).
func TestF12GroupResetAndReplay(t *testing.T) {
	s := newScenario(t, "F12", "group reset to earliest + full replay", 6)
	prod := s.produce(genConfig(112, pick(8_000, 30_000), 0))
	a, b := s.start(), s.start()
	s.wait(prod, 3*time.Minute)
	s.waitCaughtUp(recoveryBound)
	first := s.verify(verifyOpts{})
	s.stopAll(a, b)

	s.resetToEarliest()
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	c, _ := s.adm.committed(ctx, s.group, s.topic, int(s.partitions.Load()))
	s.res.note(t, "group reset with generation -1: committed offsets now %v", c)
	a, b = s.start(), s.start()
	s.markHealed()
	replay := s.waitCaughtUp(recoveryBound)
	s.res.note(t, "full replay of the topic took %.1fs", replay.Seconds())
	second := s.verify(verifyOpts{})
	var i7 []string
	for w, groups := range first.groups {
		i7 = append(i7, diffGroups(w, groups, second.groups[w])...)
	}
	s.res.check(t, "I7 replay unchanged", i7, fmt.Sprintf("all %d 1m and %d 1h groups identical before and after the replay",
		len(first.groups["1m"]), len(first.groups["1h"])))
	s.stopAll(a, b)
}

// TestF13DedupChainAcrossResume checks that a partition's rows do not depend
// on where a consumer resumed. One event id is sent three times, one chunk
// apart each (offsets 100, 500 and 900 with CHUNK_SIZE=400): read straight
// through, the second copy is a duplicate of the first (previous chunk) and
// the third a duplicate of the second: a chunk's dedup set holds every valid
// id in it, duplicates included, as docs/design.md says.
// The group then resumes inside the third chunk (committed offset 850, as
// after a crash that committed there), which re-reads chunk 2 after warming
// the dedup set from chunk 1. The sums must stay what they were.
func TestF13DedupChainAcrossResume(t *testing.T) {
	s := newScenario(t, "F13", "resume inside a chunk after a dedup chain spanning three chunks", 1)
	now := time.Now().Add(-90 * time.Minute)
	msgs := make([]kafka.Message, 3*chunkSize)
	for i := range msgs {
		id := fmt.Sprintf("chain-filler-%d", i)
		if i == 100 || i == 500 || i == 900 {
			id = "chain-repeated"
		}
		ts := now.Add(time.Duration(i) * time.Second)
		if id == "chain-repeated" {
			ts = now
		}
		msgs[i] = kafka.Message{Key: []byte(id), Value: validEvent(ts, id)}
	}
	w := &kafka.Writer{Transport: &kafka.Transport{}, Addr: kafka.TCP(s.svc.Brokers...), Topic: s.topic, RequiredAcks: kafka.RequireAll,
		BatchSize: 500, BatchTimeout: 2 * time.Millisecond, Balancer: &kafka.Hash{}}
	err := writeRetrying(s.ctx, w, msgs)
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	s.producedAt = time.Now()
	a := s.start()
	s.waitCaughtUp(recoveryBound)
	first := s.verify(verifyOpts{})
	s.stopAll(a)

	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	res, err := s.adm.c.OffsetCommit(ctx, &kafka.OffsetCommitRequest{GroupID: s.group, GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{s.topic: {{Partition: 0, Offset: 850}}}})
	if err == nil && res.Topics[s.topic][0].Error != nil {
		err = res.Topics[s.topic][0].Error
	}
	if err != nil {
		t.Fatalf("commit offset 850: %v", err)
	}
	s.mon.allowReset()
	b := s.start()
	s.markHealed()
	s.waitCaughtUp(recoveryBound)
	second := s.verify(verifyOpts{})
	var diffs []string
	for w, groups := range first.groups {
		diffs = append(diffs, diffGroups(w, groups, second.groups[w])...)
	}
	s.res.check(t, "I7 resume unchanged", diffs, "rows identical after resuming inside the third chunk")
	s.stopAll(b)
}
