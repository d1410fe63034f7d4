//go:build faults

package faults

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// compactionCase is a compaction test after its first stream: the consumer
// reading the topic, the sums verified before any compaction, and the
// exactness sampled while compactors run.
type compactionCase struct {
	*scenario
	reader *consumer
	first  *verified
	acc    sampled
}

// newCompactionCase produces a stream, lets one consumer catch up until
// every window is closed and sealed, and prices its models: the start of
// every compaction case.
func newCompactionCase(t *testing.T, id, fault string, seed int64) *compactionCase {
	t.Helper()
	s := newScenario(t, id, fault, 6)
	prod := s.produce(genConfig(seed, pick(8_000, 30_000), 0))
	c := &compactionCase{scenario: s, reader: s.startSealing()}
	s.wait(prod, 3*time.Minute)
	s.waitCaughtUp(recoveryBound)
	s.waitClosed(30 * time.Second)
	s.waitSealed(30 * time.Second)
	c.first = s.verify(verifyOpts{})
	s.priceModels()
	return c
}

// compactTwice runs a compaction, waits out the lease and runs another,
// which deletes the raw pieces the first folded.
func (c *compactionCase) compactTwice() {
	c.t.Helper()
	c.compact()
	time.Sleep(leaseAge)
	c.compact()
}

// compactAndDelete is compactTwice, sampling exactness throughout.
func (c *compactionCase) compactAndDelete() {
	c.t.Helper()
	x := c.sampleExactness()
	c.compactTwice()
	c.acc.add(x)
}

// finish reports the exactness sampled during what, verifies the sums and
// stops the reader.
func (c *compactionCase) finish(what string) *verified {
	c.t.Helper()
	c.acc.report(c.scenario, what)
	v := c.verify(verifyOpts{})
	c.stopAll(c.reader)
	return v
}

// rawBelowFrontier counts raw rows that the newest manifest of their window
// folded: zero once the deletions finished.
func (s *scenario) rawBelowFrontier(window string) uint64 {
	s.t.Helper()
	var n uint64
	err := s.ch.conn.QueryRow(s.ctx, "SELECT count() FROM "+s.db+".usage_rollup_"+window+" ANY INNER JOIN ("+
		"SELECT topic, window_start, p AS `partition`, b AS folded_below, sg AS folded_segment FROM ("+
		"SELECT topic, window_start, argMax(partitions, (generation, compaction_id)) AS ps, argMax(below, (generation, compaction_id)) AS bs,"+
		" argMax(below_segment, (generation, compaction_id)) AS sgs"+
		" FROM "+s.db+".usage_compactions WHERE topic = ? AND window = ? GROUP BY topic, window_start) ARRAY JOIN ps AS p, bs AS b, sgs AS sg"+
		") USING (topic, window_start, `partition`) WHERE topic = ? AND (chunk < folded_below OR segment < folded_segment)",
		s.topic, window, s.topic).Scan(&n)
	if err != nil {
		s.t.Fatalf("count folded raw rows of %s: %v", window, err)
	}
	return n
}

// TestF16KillCompactor kills `consumer compact` with SIGKILL after it wrote
// compact rows and before it published their manifests (it pauses
// COMPACT_SETTLE in between), then runs it again twice (publish, then
// delete). Analysts' sums are sampled from before the kill to the end.
func TestF16KillCompactor(t *testing.T) {
	s := newCompactionCase(t, "F16", "kill -9 of consumer compact between its compact rows and its manifests, then re-runs", 116)
	x := s.sampleExactness()
	k := s.compactor("COMPACT_SETTLE=20s", "COMPACT_MAX_RUN=40s")
	var rows1m, rows1h, manifests uint64
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.ch.conn.QueryRow(s.ctx, "SELECT (SELECT count() FROM "+s.db+".usage_compact_1m), (SELECT count() FROM "+s.db+
			".usage_compact_1h), (SELECT count() FROM "+s.db+".usage_compactions)").Scan(&rows1m, &rows1h, &manifests)
		if err != nil {
			t.Fatal(err)
		}
		if rows1m > 0 && rows1h > 0 {
			break
		}
		if time.Now().After(deadline) || !k.alive() {
			t.Fatalf("%s wrote no compact rows of both windows (1m %d, 1h %d; alive %v)", k.name, rows1m, rows1h, k.alive())
		}
		time.Sleep(50 * time.Millisecond)
	}
	k.kill9()
	if manifests != 0 {
		t.Fatalf("%s published %d manifests before the kill; the kill must land before them", k.name, manifests)
	}
	s.res.note(t, "%s killed after writing %d 1m and %d 1h compact rows, before any manifest (COMPACT_SETTLE=20s)", k.name, rows1m, rows1h)
	time.Sleep(time.Second) // orphans in place, sampled
	s.compactTwice()
	s.acc.add(x)
	s.res.note(t, "after the re-runs: %s; raw rows below the frontiers: 1m %d, 1h %d",
		s.storage(), s.rawBelowFrontier("1m"), s.rawBelowFrontier("1h"))
	s.checkOneRowPerGroup()
	s.finish(fmt.Sprintf("the killed run and %d re-runs", 2))
}

// TestF17ConcurrentCompactors starts two compactors at the same instant,
// several rounds: after the first stream, after a second stream into the
// same windows, and with nothing new (deletions only).
func TestF17ConcurrentCompactors(t *testing.T) {
	s := newCompactionCase(t, "F17", "two consumer compact processes started together, several rounds", 117)
	rounds := pick(3, 5)
	var exits []string
	for r := range rounds {
		if r == 1 {
			cfg := genConfig(217, pick(4_000, 15_000), 0)
			prod := s.produce(cfg)
			s.wait(prod, 3*time.Minute)
			s.waitCaughtUp(recoveryBound)
			s.waitClosed(30 * time.Second)
			s.priceModels()
		}
		x := s.sampleExactness()
		k1, k2 := s.compactor(), s.compactor()
		for _, k := range []*consumer{k1, k2} {
			if err := s.compactDone(k); err != nil {
				exits = append(exits, fmt.Sprintf("round %d: %v", r+1, err))
			}
		}
		s.acc.add(x)
		published := 0
		for _, k := range []*consumer{k1, k2} {
			published += strings.Count(k.out.String(), `"windows_compacted":`) - strings.Count(k.out.String(), `"windows_compacted":0`)
		}
		s.res.note(t, "round %d: %d of 2 window-size results published manifests; %s", r+1, published, s.storage())
		time.Sleep(leaseAge)
	}
	s.res.check(t, "compactors exit 0", exits, fmt.Sprintf("%d runs in %d rounds of two concurrent compactors exited 0", 2*rounds, rounds))
	s.finish(fmt.Sprintf("%d rounds of two concurrent compactors", rounds))
}

// TestF18LateEventAfterCompaction compacts the stream's windows and deletes
// their raw pieces, then produces a second stream whose events fall in those
// windows (event time two hours old): they are read raw next to the compact
// rows, then folded by the next compaction.
func TestF18LateEventAfterCompaction(t *testing.T) {
	s := newCompactionCase(t, "F18", "events for windows already compacted (raw rows deleted), then compaction again", 118)
	s.compactAndDelete()
	left := s.rawBelowFrontier("1m") + s.rawBelowFrontier("1h")
	before := s.storage()
	cfg := genConfig(218, pick(3_000, 10_000), 0)
	prod := s.produce(cfg)
	s.wait(prod, 3*time.Minute)
	s.waitCaughtUp(recoveryBound)
	s.res.note(t, "after the first compaction %s (%d folded raw rows left); then %d events from %s on, into compacted windows",
		before, left, cfg.Count, cfg.Start.Format(time.TimeOnly))
	s.verify(verifyOpts{}) // the late events read raw beside the compact rows
	s.waitClosed(30 * time.Second)
	s.priceModels()
	s.compactAndDelete()
	s.res.note(t, "after compacting again: %s", s.storage())
	s.finish(fmt.Sprintf("%d compaction runs (before and after the late events)", 4))
}

// TestF19ReplayAfterCompaction compacts and deletes raw pieces, then resets
// the group to the earliest offset: the replay rewrites raw pieces below the
// manifests' frontiers, which the views exclude and the next run deletes.
func TestF19ReplayAfterCompaction(t *testing.T) {
	s := newCompactionCase(t, "F19", "group reset to earliest + full replay after compaction (raw rows deleted)", 119)
	s.compactAndDelete()
	compacted := s.verify(verifyOpts{})
	s.stopAll(s.reader)

	s.resetToEarliest()
	x := s.sampleExactness()
	s.reader = s.startSealing()
	s.markHealed()
	replay := s.waitCaughtUp(recoveryBound)
	s.acc.add(x)
	s.res.note(t, "full replay after compaction took %.1fs; then %s", replay.Seconds(), s.storage())
	replayed := s.verify(verifyOpts{})
	s.compactAndDelete()
	s.res.note(t, "after compacting again: %s", s.storage())
	last := s.finish("2 compactions, the replay and 2 more compactions")
	var i7 []string
	for w, groups := range s.first.groups {
		i7 = append(i7, diffGroups(w, groups, compacted.groups[w])...)
		i7 = append(i7, diffGroups(w, groups, replayed.groups[w])...)
		i7 = append(i7, diffGroups(w, groups, last.groups[w])...)
	}
	s.res.check(t, "I7 replay unchanged", i7, fmt.Sprintf("all %d 1m and %d 1h groups identical before compaction, after it, after the replay and after compacting again",
		len(s.first.groups["1m"]), len(s.first.groups["1h"])))
}
