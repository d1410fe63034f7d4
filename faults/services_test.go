//go:build faults

package faults

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/testsupport/servicetest"
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
	return servicePid(t, kafkaPidFile, "broker")
}

// servicePid returns the pid in a service script's pid file, failing the
// test unless that process (what) is running.
func servicePid(t *testing.T, file, what string) int {
	t.Helper()
	pid, err := pidFromFile(file)
	if err != nil || !alivePid(pid) {
		t.Fatalf("no running %s in %s (%v)", what, file, err)
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
	return servicePid(t, clickhousePidFile, "ClickHouse server")
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

// proxiedKafka says where the consumers' Kafka proxy must forward to (the
// shared broker's PROXIED listener, which scripts/kafka.sh configures) and
// listen on (the address that listener advertises), and which brokers the
// test uses directly.
func proxiedKafka(t *testing.T) (upstream, listen string, direct []string) {
	t.Helper()
	servicetest.Reach(t, proxiedListener)
	return proxiedListener, proxiedAdvertised, servicetest.NeedKafka(t)
}
