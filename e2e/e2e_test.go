package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/audit"
	"github.com/usage-rollup/usage-rollup/internal/loadgen"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/check"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/servicetest"
)

const partitions = 6

// TestCrashRestartAndReplayStayExact is the pipeline's core promise against
// real Kafka and ClickHouse: two consumer processes share a group; one kills
// itself between a ClickHouse insert and its offset commit, the other is
// kill -9'd mid-stream, while it holds records it read but has not written or
// committed; both restart; then the group is reset to the earliest
// offset and the whole topic is replayed. The view sums must equal the
// generator's ground truth exactly after each phase, and every malformed
// message must have exactly one row in usage_rejected.
func TestCrashRestartAndReplayStayExact(t *testing.T) {
	svc := servicetest.Need(t)
	topic, db, group := randomName("e2e"), randomName("e2e"), randomName("e2e")
	ctx := context.Background()
	if _, _, err := loadgen.EnsureTopic(ctx, svc.Brokers, topic, partitions); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	rd := openAudit(t, svc, db)
	kc := kafkaClient(svc)
	// Small chunks so the stream crosses many chunk boundaries, restarts warm
	// up a previous chunk, and the dedup horizon is exercised.
	env := baseEnv(svc, topic, group, db, "CHUNK_SIZE=400", "FLUSH_INTERVAL=300ms")

	gen := loadgen.DefaultConfig()
	gen.Seed, gen.Count, gen.Rate, gen.Start = 20261127, 24_000, 2_000, time.Now().Add(-time.Minute)
	gen.MalformedRatio = 0.02
	type produced struct {
		exp loadgen.Expected
		err error
	}
	prodDone := make(chan produced, 1)
	go func() {
		exp, err := loadgen.Produce(ctx, svc.Brokers, topic, gen)
		prodDone <- produced{exp, err}
	}()

	// Phase 1: a crashes itself between an insert and its commit; b is
	// kill -9'd in the middle of the stream; both come back.
	a := startConsumer(t, "a1", env, "FAULT_CRASH_AFTER_WRITES=8")
	b := startConsumer(t, "b1", env)
	a.waitKilled(60 * time.Second)
	if !strings.Contains(a.Out.String(), "failpoint: killing the process between write and commit") {
		t.Fatal("a1 died without passing the write/commit failpoint")
	}
	a = startConsumer(t, "a2", env)
	// Kill b only while it holds records it read but has not committed
	// (unwritten_test.go): otherwise the kill tests nothing a clean stop
	// would not.
	waitFrom := time.Now()
	u := b.waitUncommitted(kc, group, topic, 60*time.Second)
	b.kill9()
	held := killUncommitted(t, kc, group, topic, b, u)
	t.Logf("%s kill -9'd %s after %s started, holding at least %d records read past its committed offsets",
		b.Name, time.Since(waitFrom).Round(time.Millisecond), a.Name, held)
	b = startConsumer(t, "b2", env)

	var p produced
	select {
	case p = <-prodDone:
	case <-time.After(3 * time.Minute):
		t.Fatal("producer did not finish")
	}
	if p.err != nil {
		t.Fatalf("produce: %v", p.err)
	}
	want := &p.exp
	t.Logf("produced %d messages: %d distinct accepted, %d duplicates, %d malformed", want.Sent, want.Accepted, want.Duplicates, want.Malformed)

	ends := endOffsets(t, kc, topic, partitions)
	took := waitExact(t, rd, topic, want, ends)
	t.Logf("phase 1 (crash between insert and commit, kill -9, restarts): exact %s after the producer finished", took)
	for _, c := range []*consumer{a, b} {
		t.Logf("%s stopped %s after SIGTERM", c.Name, c.term(30*time.Second))
	}
	reconcileOK(t, env)
	committed := servicetest.Committed(t, kc, group, topic, partitions)
	for part, end := range ends {
		if committed[part] != end {
			t.Errorf("partition %d committed %d after a clean stop, want %d", part, committed[part], end)
		}
	}

	// Phase 2: reset the group to the earliest offset and replay everything.
	resetGroup(t, kc, group, topic, partitions)
	a = startConsumer(t, "a3", env)
	b = startConsumer(t, "b3", env)
	eventually(t, 2*time.Minute, "replay committed to the end", func() string {
		got := servicetest.Committed(t, kc, group, topic, partitions)
		for part, end := range ends {
			if got[part] != end {
				return fmt.Sprintf("partition %d committed %d of %d", part, got[part], end)
			}
		}
		return ""
	})
	if diffs := diff(t, rd, topic, want); len(diffs) > 0 {
		t.Fatalf("after a full replay the sums changed:\n%s", strings.Join(diffs, "\n"))
	}
	t.Log("phase 2 (group reset to earliest, full replay): sums unchanged and exact")
	for _, c := range []*consumer{a, b} {
		c.term(30 * time.Second)
	}
}

// waitExact waits until every partition's progress reached its end offset
// and the views match want, and returns how long that took.
func waitExact(t *testing.T, rd *audit.Reader, topic string, want *loadgen.Expected, ends map[int]int64) time.Duration {
	t.Helper()
	return eventually(t, 2*time.Minute, "exact sums", func() string {
		prog, err := rd.Progress(context.Background(), topic)
		if err != nil {
			return err.Error()
		}
		next := map[int]int64{}
		for _, p := range prog {
			next[int(p.Partition)] = p.NextOffset
		}
		for part, end := range ends {
			if next[part] < end {
				return fmt.Sprintf("partition %d written up to %d of %d", part, next[part], end)
			}
		}
		if diffs := diff(t, rd, topic, want); len(diffs) > 0 {
			return strings.Join(diffs, "; ")
		}
		return ""
	})
}

// diff compares both windows and the rejection table with want.
func diff(t *testing.T, rd *audit.Reader, topic string, want *loadgen.Expected) []string {
	t.Helper()
	var out []string
	for _, w := range []string{"1m", "1h"} {
		got, err := rd.TotalsByWorkspaceModel(context.Background(), w, topic)
		if err != nil {
			return []string{err.Error()}
		}
		for _, d := range check.Diff(want, got) {
			out = append(out, "usage_"+w+" "+d)
		}
		if d := check.Late(want, got); d != "" {
			out = append(out, "usage_"+w+" "+d)
		}
	}
	rejected, err := rd.RejectedCount(context.Background(), topic)
	if err != nil {
		return append(out, err.Error())
	}
	if rejected != uint64(want.Malformed) {
		out = append(out, fmt.Sprintf("usage_rejected has %d rows, want %d", rejected, want.Malformed))
	}
	return out
}

// reconcileOK runs `consumer reconcile` and requires every partition to
// balance: accepted + rejected + duplicates = offsets written.
func reconcileOK(t *testing.T, env []string) {
	t.Helper()
	cmd := exec.Command(binary, "reconcile")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("consumer reconcile: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), " ok\n"); n != partitions {
		t.Fatalf("consumer reconcile: %d of %d partitions balanced:\n%s", n, partitions, out)
	}
	t.Logf("consumer reconcile:\n%s", out)
}
