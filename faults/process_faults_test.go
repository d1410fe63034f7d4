//go:build faults

package faults

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// recoveryBound is I5's bound: how long after a fault ends lag must be zero.
const recoveryBound = 90 * time.Second

const failpointMsg = "failpoint: killing the process between write and commit"

// waitAssigned waits until c reports at least n assigned partitions.
func waitAssigned(t *testing.T, c *consumer, n int, limit time.Duration) time.Duration {
	t.Helper()
	took, err := waitAssignedErr(c, n, limit)
	if err != nil {
		t.Fatal(err)
	}
	return took
}

func waitAssignedErr(c *consumer, n int, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		v, _, err := c.metric("usage_rollup_assigned_partitions")
		if err == nil && int(v) >= n {
			return time.Since(start), nil
		}
		if time.Since(start) > limit {
			return 0, fmt.Errorf("%s has %v partitions assigned after %s, want >= %d (err %v)", c.name, v, limit, n, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// lastLine returns the last non-empty line of a process's output.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

// TestF01KillRepeatedly kills consumers with SIGKILL while the stream is
// produced: one dies at the failpoint between a ClickHouse insert and its
// offset commit, the other is kill -9'd from outside at random moments.
func TestF01KillRepeatedly(t *testing.T) {
	s := newScenario(t, "F1", "kill -9 consumers repeatedly, incl. between insert and commit", 6)
	reps := pick(2, 5)
	prod := s.produce(genConfig(101, pick(8_000, 30_000), pick(1_500.0, 2_000.0)))
	a := s.start(fmt.Sprintf("FAULT_CRASH_AFTER_WRITES=%d", 6))
	b := s.start()
	failpoints, kills := 0, 0
	for i := range reps {
		killed, err := a.WaitExit(60 * time.Second)
		if err != nil || !killed || !strings.Contains(a.out.String(), failpointMsg) {
			t.Fatalf("%s did not die at the write/commit failpoint (killed %v, err %v)", a.name, killed, err)
		}
		failpoints++
		next := []string{}
		if i < reps-1 {
			// A restarted consumer re-reads and rewrites the chunk of each
			// partition it gets, so it makes at least two writes even when
			// the stream already ended: a small threshold always fires.
			next = append(next, fmt.Sprintf("FAULT_CRASH_AFTER_WRITES=%d", 2+i%2))
		}
		a = s.start(next...)
		time.Sleep(time.Duration(800+300*i) * time.Millisecond)
		b.kill9()
		kills++
		b = s.start()
	}
	s.markHealed()
	s.wait(prod, 3*time.Minute)
	s.res.note(t, "%d deaths at the insert/commit failpoint and %d external kill -9 while producing", failpoints, kills)
	s.waitCaughtUp(recoveryBound)
	s.verify(verifyOpts{})
	s.stopAll(a, b)
}

// TestF02RollingRestart restarts every consumer in turn with SIGTERM while
// the stream is produced, as a deploy does.
func TestF02RollingRestart(t *testing.T) {
	s := newScenario(t, "F2", "rolling SIGTERM restart of all consumers", 6)
	rounds := pick(1, 3)
	prod := s.produce(genConfig(102, pick(8_000, 30_000), pick(1_200.0, 1_500.0)))
	cs := []*consumer{s.start(), s.start(), s.start()}
	waitAssigned(t, cs[0], 1, 30*time.Second)
	var slowest time.Duration
	var errs []string
	for range rounds {
		for i := range cs {
			took, err := cs[i].Term(40 * time.Second)
			if err != nil {
				errs = append(errs, err.Error())
			}
			slowest = max(slowest, took)
			cs[i] = s.start()
			time.Sleep(1500 * time.Millisecond)
		}
	}
	s.markHealed()
	s.res.check(t, "SIGTERM exits 0", errs, fmt.Sprintf("%d restarts, each exited 0; slowest shutdown %.1fs", rounds*len(cs), slowest.Seconds()))
	s.wait(prod, 3*time.Minute)
	s.waitCaughtUp(recoveryBound)
	s.verify(verifyOpts{})
	s.stopAll(cs...)
}

// TestF03ZombieAfterSIGSTOP pauses a consumer longer than the session
// timeout: the group evicts it and hands its partitions over. On SIGCONT the
// paused process still holds its old partitions' state and keeps writing
// until it notices its generation is gone (a zombie).
func TestF03ZombieAfterSIGSTOP(t *testing.T) {
	s := newScenario(t, "F3", "SIGSTOP a consumer past the session timeout, then SIGCONT (zombie)", 6)
	pause := sessionTimeout + pick(4*time.Second, 8*time.Second)
	prod := s.produce(genConfig(103, pick(10_000, 30_000), pick(1_200.0, 1_500.0)))
	a, b := s.start(), s.start()
	waitAssigned(t, a, 1, 30*time.Second)
	waitAssigned(t, b, 1, 30*time.Second)
	time.Sleep(time.Second)
	before, _, _ := a.metric("usage_rollup_batches_written_total")
	a.signal(syscall.SIGSTOP)
	stopped := time.Now()
	took := waitAssigned(t, b, 6, pause+20*time.Second)
	s.res.note(t, "%s paused; %s owned all 6 partitions %.1fs later (session timeout %s)", a.name, b.name, took.Seconds(), sessionTimeout)
	if rest := pause - time.Since(stopped); rest > 0 {
		time.Sleep(rest)
	}
	logBefore := len(a.out.String())
	a.signal(syscall.SIGCONT)
	s.markHealed()
	time.Sleep(3 * time.Second)
	after, _, _ := a.metric("usage_rollup_batches_written_total")
	zombieLog := a.out.String()[logBefore:]
	s.res.note(t, "after SIGCONT (paused %.1fs) the zombie wrote %.0f batches in 3s; %d rejected commits logged",
		time.Since(stopped).Seconds()-3, after-before, strings.Count(zombieLog, "commit offset"))
	s.wait(prod, 3*time.Minute)
	s.waitCaughtUp(recoveryBound)
	s.verify(verifyOpts{})
	s.stopAll(a, b)
}
