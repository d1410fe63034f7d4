package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/servicetest"
)

// A kill -9 only tests recovery when the victim holds records it read but
// has not committed: killed between generations, or right after a flush, it
// loses nothing a clean stop would not. waitUncommitted finds such a moment
// and freezes the victim in it; killUncommitted proves, after the kill, that
// it was one.
//
// The proof compares reads with commits over the victim's partitions of its
// current generation. Per partition p, reads that count as consumed start at
// the chunk start from_p the process logged ("partition assigned",
// aggregate_from) and run to r_p; the group's commit c_p never passes r_p
// (the process commits only what it wrote, after reading it). Knowing
// neither r_p nor where usage_rollup_events_consumed_total stood when the
// generation began, it takes anchors: the committed offsets, then a scrape.
// At an anchor i, r_p >= c_p when the process committed p in this
// generation (c_p above the offset it resumed from), else r_p >= from_p; and
// between anchor i and a later scrape the reads grew by exactly the growth
// of the consumed counter (the log has no gaps). So
//
//	sum(r_p) >= max over anchors i of (sum(lower_p at i) - consumed at i) + consumed now
//
// and once that exceeds sum(max(c_p, from_p)), the process read records past
// its committed offsets.

// freezeSettle is how long waitUncommitted lets a commit the victim sent
// just before SIGSTOP reach the broker (loopback) before it reads the
// committed offsets a frozen process can no longer move.
const freezeSettle = 100 * time.Millisecond

// Metrics of the victim the proof reads.
const (
	consumedTotal   = "usage_rollup_events_consumed_total"
	rebalancesTotal = "usage_rollup_rebalances_total"
)

// uncommitted is the state waitUncommitted found.
type uncommitted struct {
	generation   int           // the process's generation count
	from         map[int]int64 // per partition of it: where counted reads start
	readsAtLeast int64         // sum(r_p), a lower bound, at the last scrape
}

// waitUncommitted waits until c provably read more records in its current
// generation than the group's commits of its partitions cover, then stops it
// (SIGSTOP) and checks again against the commits of the frozen process,
// continuing it (SIGCONT) if a flush got in between. It returns with c
// stopped: the caller kills it and passes the result to killUncommitted.
func (c *consumer) waitUncommitted(kc *kafka.Client, group, topic string, limit time.Duration) uncommitted {
	c.t.Helper()
	start := time.Now()
	var (
		u    uncommitted
		best int64 // max over anchors of sum(lower_p) - consumed
	)
	last := "no scrape yet"
	for time.Since(start) < limit {
		committed := servicetest.Committed(c.t, kc, group, topic, partitions)
		cur, err := c.scrape()
		if err != nil {
			last = err.Error()
			time.Sleep(20 * time.Millisecond)
			continue
		}
		gen, from, resumed := c.lastGeneration()
		if gen == 0 || gen != int(cur[rebalancesTotal]) || len(from) == 0 {
			last = fmt.Sprintf("generation %d in the log, %.0f in /metrics, %d partitions assigned", gen, cur[rebalancesTotal], len(from))
			u = uncommitted{}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		consumed := int64(cur[consumedTotal])
		var lower int64
		covered := coveredBy(committed, from)
		for p, f := range from {
			if committed[p] > resumed[p] {
				lower += committed[p]
			} else {
				lower += f
			}
		}
		if u.generation != gen {
			u, best = uncommitted{generation: gen, from: from}, lower-consumed
		}
		best = max(best, lower-consumed)
		u.readsAtLeast = best + consumed
		if u.readsAtLeast > covered {
			_ = c.Cmd.Process.Signal(syscall.SIGSTOP)
			time.Sleep(freezeSettle)
			if covered = coveredBy(servicetest.Committed(c.t, kc, group, topic, partitions), from); u.readsAtLeast > covered {
				return u
			}
			_ = c.Cmd.Process.Signal(syscall.SIGCONT)
		}
		last = fmt.Sprintf("generation %d, partitions %v: reads at least %d, commits cover %d", gen, from, u.readsAtLeast, covered)
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("%s never provably held uncommitted records within %s: %s", c.Name, limit, last)
	return uncommitted{}
}

// killUncommitted requires, after c was killed, that the records it had read
// in its last generation pass the group's commits of its partitions, and
// returns by how many. It must run before anyone else owns those partitions,
// that is within the session timeout after the kill.
func killUncommitted(t *testing.T, kc *kafka.Client, group, topic string, c *consumer, u uncommitted) int64 {
	t.Helper()
	committed := servicetest.Committed(t, kc, group, topic, partitions)
	covered := coveredBy(committed, u.from)
	if u.readsAtLeast <= covered {
		t.Fatalf("%s's read positions on the partitions of its last generation (counted from %v) sum to at least %d, their commits %v to %d: nothing uncommitted at the kill",
			c.Name, u.from, u.readsAtLeast, committed, covered)
	}
	return u.readsAtLeast - covered
}

// coveredBy returns sum(max(c_p, from_p)) over the partitions of from: how
// far the commits reach, counted like the reads.
func coveredBy(committed, from map[int]int64) int64 {
	var n int64
	for p, f := range from {
		n += max(committed[p], f)
	}
	return n
}

// lastGeneration returns, from c's log, how many generations it joined and,
// per partition of the last that logged its assignment, where its counted
// reads start and the committed offset it resumed from. from is empty until
// every partition of the generation logged its assignment.
func (c *consumer) lastGeneration() (gen int, from, resumed map[int]int64) {
	var want []int
	for _, line := range strings.Split(c.Out.String(), "\n") {
		var l struct {
			Message       string
			Partitions    []int
			Partition     int
			Committed     int64
			AggregateFrom *int64 `json:"aggregate_from"`
		}
		if json.Unmarshal([]byte(line), &l) != nil {
			continue
		}
		switch {
		case l.Message == "joined generation":
			gen, want = gen+1, l.Partitions
			from, resumed = map[int]int64{}, map[int]int64{}
		case l.Message == "partition assigned" && l.AggregateFrom != nil && from != nil:
			from[l.Partition], resumed[l.Partition] = *l.AggregateFrom, l.Committed
		}
	}
	if len(from) != len(want) {
		return gen, nil, nil
	}
	return gen, from, resumed
}
