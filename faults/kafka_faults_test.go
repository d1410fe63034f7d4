//go:build faults

package faults

import (
	"syscall"
	"testing"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/testsupport/faultproxy"
)

// TestF04CutConsumerFromKafka cuts one consumer's connections to Kafka (all
// of them: it reaches the broker only through the proxy on the PROXIED
// listener) for longer than the session timeout, while ClickHouse stays
// reachable. The other consumer takes its partitions over; the cut one keeps
// its in-memory state and may write it to ClickHouse, but its commits fail.
// It runs without a dead-letter topic: the cut consumer could not write its
// rejected messages there, and so would not write to ClickHouse either,
// which is what this case is about.
func TestF04CutConsumerFromKafka(t *testing.T) {
	upstream, listen, direct := proxiedKafka(t)
	s := newScenario(t, "F4", "cut consumer<->Kafka (proxy Cut) past the session timeout; ClickHouse reachable", 6,
		scenarioOpt{brokers: direct, noDeadLetter: true})
	px, err := faultproxy.New(listen, upstream)
	if err != nil {
		t.Fatal(err)
	}
	px.Start()
	t.Cleanup(func() { _ = px.Close() })
	cut := sessionTimeout + pick(5*time.Second, 12*time.Second)
	prod := s.produce(genConfig(104, pick(10_000, 30_000), pick(1_000.0, 1_200.0)))
	a := s.start("KAFKA_BROKERS=" + listen)
	b := s.start()
	waitAssigned(t, a, 1, 30*time.Second)
	waitAssigned(t, b, 1, 30*time.Second)
	time.Sleep(time.Second)
	writesBefore, _, _ := a.metric("usage_rollup_batches_written_total")
	px.Cut()
	cutAt := time.Now()
	took := waitAssigned(t, b, 6, cut+20*time.Second)
	s.res.note(t, "%s cut from Kafka; %s owned all 6 partitions %.1fs later", a.name, b.name, took.Seconds())
	if rest := cut - time.Since(cutAt); rest > 0 {
		time.Sleep(rest)
	}
	writesDuring, _, _ := a.metric("usage_rollup_batches_written_total")
	commitErrs, _, _ := a.metric("usage_rollup_offset_commit_errors_total")
	px.Heal()
	s.markHealed()
	s.res.note(t, "during the %.0fs cut the isolated consumer wrote %.0f batches to ClickHouse and had %.0f failed commits; proxy reset %d connections",
		time.Since(cutAt).Seconds(), writesDuring-writesBefore, commitErrs, px.Stats().Reset)
	s.wait(prod, 3*time.Minute)
	s.waitCaughtUp(recoveryBound)
	if n, _, err := a.metric("usage_rollup_assigned_partitions"); err == nil {
		s.res.note(t, "after the heal the cut consumer rejoined with %.0f partitions", n)
	}
	s.verify(verifyOpts{})
	s.stopAll(a, b)
}

// TestF05BrokerCrashAndPause kills the broker with SIGKILL mid-stream and
// restarts it, then pauses it (SIGSTOP) past the session timeout and resumes
// it. Production pauses while the broker is down: the generator's writes are
// synchronous and would fail.
func TestF05BrokerCrashAndPause(t *testing.T) {
	s := newScenario(t, "F5", "broker kill -9 + restart; broker SIGSTOP/SIGCONT", 6)
	pid := kafkaPid(t)
	argv, _ := processCmdline(pid)
	t.Cleanup(func() { ensureKafka(t, pid, argv) })

	a, b := s.start(), s.start()
	if !short() {
		brokerCrash(t, s, &pid, &argv)
	} else {
		s.res.note(t, "short form: broker kill -9 skipped (a restart takes ~45s); pause only")
	}
	crashRecovery := s.res.recovery

	prod2 := s.produce(genConfig(205, pick(5_000, 15_000), pick(1_500.0, 2_000.0)))
	time.Sleep(2 * time.Second)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	pause := sessionTimeout + pick(3*time.Second, 6*time.Second)
	time.Sleep(pause)
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	s.markHealed()
	<-prod2.done
	if prod2.err != nil {
		s.res.note(t, "producer stopped by the broker pause after %d messages: %.160s", prod2.exp.Sent, prod2.err)
	} else {
		s.addExpected(&prod2.exp)
	}
	s.res.note(t, "broker paused %.1fs (session timeout %s)", pause.Seconds(), sessionTimeout)
	s.waitCaughtUp(recoveryBound)
	if crashRecovery >= 0 {
		s.res.note(t, "recovery: %.1fs after the crash, %.1fs after the pause", crashRecovery.Seconds(), s.res.recovery.Seconds())
	}
	// The generators' totals are void when a write failed mid-batch; the
	// log read back is the truth either way.
	s.verify(verifyOpts{skipGeneratorCheck: s.generatorVoid || prod2.err != nil})
	s.stopAll(a, b)
}

// brokerCrash kills the broker with SIGKILL while consumers are mid-stream
// (they hold unwritten state and commits in flight), restarts it and waits
// for lag zero.
func brokerCrash(t *testing.T, s *scenario, pidp *int, argvp *[]string) {
	pid, argv := *pidp, *argvp
	prod := s.produce(genConfig(105, 15_000, 2_000))
	time.Sleep(4 * time.Second)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	<-prod.done // the producer fails or finishes; its messages are read back either way
	if prod.err != nil {
		s.res.note(t, "producer stopped by the broker crash after %d messages: %.160s", prod.exp.Sent, prod.err)
		s.generatorVoid = true
	} else {
		s.addExpected(&prod.exp)
	}
	for alivePid(pid) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	if err := runScript(t, 3*time.Minute, "kafka.sh", "start"); err != nil {
		t.Logf("kafka.sh start: %v", err)
		ensureKafka(t, pid, argv)
	}
	pid = kafkaPid(t)
	argv, _ = processCmdline(pid)
	s.res.note(t, "broker down (kill -9 to ready) %.1fs", time.Since(killedAt).Seconds())
	s.markHealed()
	s.waitCaughtUp(recoveryBound)
	*pidp, *argvp = pid, argv
}
