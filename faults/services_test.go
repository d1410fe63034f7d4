//go:build faults

package faults

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/servicetest"
)

// The broker and the ClickHouse server are shared with the rest of the
// machine; a case that kills or pauses one always brings it back.

const (
	kafkaPidFile      = "../.run/kafka/kafka.pid"
	clickhousePidFile = "../.run/clickhouse/clickhouse-server.pid"
	// proxiedListener is the broker's PROXIED listener (scripts/kafka.sh) and
	// proxiedAdvertised the address it advertises, where the suite's proxy
	// listens: clients bootstrapping there are sent back there.
	proxiedListener   = "127.0.0.1:9094"
	proxiedAdvertised = "127.0.0.1:9095"
)

func reachable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// processCmdline returns a process's argv.
func processCmdline(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"), nil
}

func alivePid(pid int) bool { return syscall.Kill(pid, 0) == nil }

// kafkaPid returns the shared broker's pid.
func kafkaPid(t *testing.T) int {
	t.Helper()
	pid, err := pidFromFile(kafkaPidFile)
	if err != nil || !alivePid(pid) {
		t.Fatalf("no running broker in %s (%v)", kafkaPidFile, err)
	}
	return pid
}

// ensureKafka brings the shared broker back if a case left it stopped or
// dead: SIGCONT, then scripts/kafka.sh start, then (if the script fails, for
// example while someone edits it) the broker's previous command line.
func ensureKafka(t *testing.T, pid int, argv []string) {
	t.Helper()
	_ = syscall.Kill(pid, syscall.SIGCONT)
	if alivePid(pid) && reachable("127.0.0.1:9092") {
		return
	}
	err := runScript(t, 3*time.Minute, "kafka.sh", "start")
	if err == nil {
		return
	}
	t.Logf("scripts/kafka.sh start failed, restarting the broker with its previous command line: %v", err)
	if len(argv) == 0 {
		t.Fatalf("cannot restart the broker: %v", err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	logf, ferr := os.OpenFile("../.run/kafka/logs/kafka.out", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if ferr == nil {
		cmd.Stdout, cmd.Stderr = logf, logf
		defer logf.Close()
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("restart broker: %v", err)
	}
	_ = os.WriteFile(kafkaPidFile, []byte(fmt.Sprintf("%d\n", cmd.Process.Pid)), 0o644)
	go func() { _ = cmd.Wait() }() // reaped only if the test binary outlives it
	waitReachable(t, "127.0.0.1:9092", 2*time.Minute)
}

func waitReachable(t *testing.T, addr string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for !reachable(addr) {
		if time.Since(start) > limit {
			t.Fatalf("%s not reachable within %s", addr, limit)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return time.Since(start)
}

// clickhousePid returns the shared ClickHouse server's pid.
func clickhousePid(t *testing.T) int {
	t.Helper()
	pid, err := pidFromFile(clickhousePidFile)
	if err != nil || !alivePid(pid) {
		t.Fatalf("no running ClickHouse server in %s (%v)", clickhousePidFile, err)
	}
	return pid
}

// ensureClickHouse restarts the shared server if a case left it dead.
func ensureClickHouse(t *testing.T) {
	t.Helper()
	pid, err := pidFromFile(clickhousePidFile)
	if err == nil && alivePid(pid) {
		_ = syscall.Kill(pid, syscall.SIGCONT)
		return
	}
	if err := runScript(t, 3*time.Minute, "clickhouse.sh", "start"); err != nil {
		t.Fatalf("restart ClickHouse: %v", err)
	}
}

// proxiedKafka says where the consumers' Kafka proxy must forward to and
// listen on, and which brokers the test uses directly. It prefers the shared
// broker's PROXIED listener; until the broker has one, it starts a private
// single-node broker with the same listener layout (ownbroker_test.go).
func proxiedKafka(t *testing.T) (upstream, listen string, direct []string) {
	t.Helper()
	if reachable(proxiedListener) {
		return proxiedListener, proxiedAdvertised, strings.Split(servicetest.EnvOr("KAFKA_BROKERS", "127.0.0.1:9092"), ",")
	}
	b, err := startOwnBroker(t)
	if err != nil {
		t.Fatalf("the shared broker has no PROXIED listener on %s and a private broker did not start: %v", proxiedListener, err)
	}
	return b.proxied, b.advertised, []string{b.plain}
}

// ownBroker is a private single-node KRaft broker with a PROXIED listener,
// started from the shared broker's jars when the shared broker lacks one.
type ownBroker struct {
	dir                        string
	plain, proxied, advertised string
	cmd                        *exec.Cmd
	done                       chan struct{}
}

var (
	ownMu     sync.Mutex
	ownActive *ownBroker
)

const (
	ownPlain      = "127.0.0.1:19092"
	ownController = "127.0.0.1:19093"
	ownProxied    = "127.0.0.1:19094"
	ownAdvertised = "127.0.0.1:19095"
)

func startOwnBroker(t *testing.T) (*ownBroker, error) {
	ownMu.Lock()
	defer ownMu.Unlock()
	if ownActive != nil {
		return ownActive, nil
	}
	libs, err := filepath.Abs("../.run/kafka/libs")
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(libs); err != nil {
		return nil, fmt.Errorf("no Kafka jars (run scripts/kafka.sh start once): %w", err)
	}
	dir, err := os.MkdirTemp("", "faults-broker")
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "server.properties")
	props := fmt.Sprintf(`process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=%[2]s
listeners=PLAINTEXT://%[1]s,CONTROLLER://%[2]s,PROXIED://%[3]s
advertised.listeners=PLAINTEXT://%[1]s,PROXIED://%[4]s
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PROXIED:PLAINTEXT
log.dirs=%[5]s/data
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
offsets.topic.num.partitions=4
group.initial.rebalance.delay.ms=0
`, ownPlain, ownController, ownProxied, ownAdvertised, dir)
	if err := os.WriteFile(conf, []byte(props), 0o644); err != nil {
		return nil, err
	}
	cp := libs + "/*"
	jvm := []string{"-Xmx256m", "-Xms256m", "-XX:+UseG1GC", "-Djava.awt.headless=true", "-Dkafka.logs.dir=" + dir}
	format := exec.Command("java", append(jvm, "-cp", cp, "kafka.tools.StorageTool", "format",
		"-t", "ZmF1bHRzLWJyb2tlci0wMQ", "-c", conf, "--standalone")...)
	if out, err := format.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("format: %w\n%s", err, tail(string(out), 1024))
	}
	logf, err := os.Create(filepath.Join(dir, "kafka.out"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("java", append(jvm, "-cp", cp, "kafka.Kafka", conf)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	b := &ownBroker{dir: dir, plain: ownPlain, proxied: ownProxied, advertised: ownAdvertised, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(b.done)
	}()
	start := time.Now()
	for !reachable(ownPlain) || !reachable(ownProxied) {
		select {
		case <-b.done:
			return nil, fmt.Errorf("private broker exited; see %s/kafka.out", dir)
		case <-time.After(300 * time.Millisecond):
		}
		if time.Since(start) > 2*time.Minute {
			_ = cmd.Process.Kill()
			<-b.done
			return nil, fmt.Errorf("private broker not ready within 2m; see %s/kafka.out", dir)
		}
	}
	t.Logf("started a private broker (%s, PROXIED %s advertised as %s) in %s", ownPlain, ownProxied, ownAdvertised, time.Since(start).Round(time.Second))
	ownActive = b
	return b, nil
}

// stopOwnBroker stops the private broker, if one was started.
func stopOwnBroker() {
	ownMu.Lock()
	defer ownMu.Unlock()
	if ownActive == nil {
		return
	}
	_ = ownActive.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-ownActive.done:
	case <-time.After(30 * time.Second):
		_ = ownActive.cmd.Process.Kill()
		<-ownActive.done
	}
	os.RemoveAll(ownActive.dir)
	ownActive = nil
}
