//go:build faults

package faults

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/testsupport/servicetest"
)

// consumer is one running consumer process: servicetest's, plus the test
// it belongs to. name, out, alive and kill9 are the lowercase spellings the
// cases use for Process's Name, Out, Done and Kill9.
type consumer struct {
	*servicetest.Process
	t    *testing.T
	name string
	out  *servicetest.SyncBuffer
}

// startConsumer runs the binary with env plus extra ("K=V", later wins). Its
// output is logged when the test fails, and kept in the case's log directory
// when FAULTS_LOG_DIR is set.
func startConsumer(t *testing.T, name string, env []string, extra ...string) *consumer {
	t.Helper()
	return startCommand(t, name, nil, env, extra...)
}

// startCommand runs the binary with args (nil: consume) and env plus extra,
// as startConsumer does.
func startCommand(t *testing.T, name string, args, env []string, extra ...string) *consumer {
	t.Helper()
	p := servicetest.StartProcess(t, binary, args, name, os.Getenv("FAULTS_LOG_DIR"), append(env, extra...)...)
	return &consumer{Process: p, t: t, name: p.Name, out: p.Out}
}

func (c *consumer) pid() int { return c.Cmd.Process.Pid }

func (c *consumer) alive() bool {
	select {
	case <-c.Done():
		return false
	default:
		return true
	}
}

// kill9 sends SIGKILL and waits for the process to be gone.
func (c *consumer) kill9() { c.Kill9() }

func (c *consumer) signal(sig syscall.Signal) {
	c.t.Helper()
	if err := c.Cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("signal %s to %s: %v", sig, c.name, err)
	}
}

// metric returns the sum of every series of name on the process's /metrics,
// and whether the name was exposed at all.
func (c *consumer) metric(name string) (float64, bool, error) {
	body, err := c.Scrape()
	if err != nil {
		return 0, false, err
	}
	return parseMetric(body, name)
}

// parseMetric sums the samples of name in a Prometheus text exposition.
func parseMetric(body, name string) (float64, bool, error) {
	all, err := servicetest.ParseMetrics(body)
	if err != nil {
		return 0, false, err
	}
	v, ok := all[name]
	return v, ok, nil
}

// rssBytes reads the resident set size of pid from /proc.
func rssBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest) // "123456 kB"
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// rssSampler samples a process's RSS every interval until stopped.
type rssSampler struct {
	stop    chan struct{}
	done    chan struct{}
	samples []int64
}

func sampleRSS(pid int, interval time.Duration) *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			if v, err := rssBytes(pid); err == nil {
				s.samples = append(s.samples, v)
			}
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// finish stops sampling and returns the samples.
func (s *rssSampler) finish() []int64 {
	close(s.stop)
	<-s.done
	return s.samples
}

// runScript runs one of the repository's service scripts.
func runScript(t *testing.T, limit time.Duration, script string, args ...string) error {
	t.Helper()
	cmd := exec.Command("../scripts/"+script, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%s %s: %w\n%s", script, strings.Join(args, " "), err, servicetest.Tail(out.String(), 2048))
		}
		t.Logf("%s %s: %s", script, strings.Join(args, " "), strings.TrimSpace(servicetest.Tail(out.String(), 300)))
		return nil
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s %s did not finish within %s\n%s", script, strings.Join(args, " "), limit, servicetest.Tail(out.String(), 2048))
	}
}

// pidFromFile reads a pid file of the service scripts.
func pidFromFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
