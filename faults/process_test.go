//go:build faults

package faults

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/servicetest"
)

// consumer is one running consumer process.
type consumer struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	out     *servicetest.SyncBuffer
	metrics string // host:port of its /metrics
	done    chan struct{}
	err     error
}

// freePort returns a loopback address nobody listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startConsumer runs the binary with env plus extra ("K=V", later wins). Its
// output is logged when the test fails, and kept in the case's log directory
// when FAULTS_LOG_DIR is set.
func startConsumer(t *testing.T, name string, env []string, extra ...string) *consumer {
	t.Helper()
	return startCommand(t, name, nil, env, extra...)
}

// startCommand runs the binary with args (nil: consume; "compact" runs one
// compaction) and env plus extra, as startConsumer does.
func startCommand(t *testing.T, name string, args, env []string, extra ...string) *consumer {
	t.Helper()
	c := &consumer{t: t, name: name, out: &servicetest.SyncBuffer{}, done: make(chan struct{}), metrics: freePort(t)}
	c.cmd = exec.Command(binary, args...)
	c.cmd.Env = append(append(append(os.Environ(), env...), "METRICS_ADDR="+c.metrics), extra...)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = c.cmd.Process.Signal(syscall.SIGCONT)
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		if dir := os.Getenv("FAULTS_LOG_DIR"); dir != "" {
			_ = os.MkdirAll(dir, 0o755)
			_ = os.WriteFile(fmt.Sprintf("%s/%s-%s.log", dir, sanitize(t.Name()), name), []byte(c.out.String()), 0o644)
		}
		if t.Failed() {
			t.Logf("--- output of %s (last 3 KB):\n%s", name, tail(c.out.String(), 3072))
		}
	})
	return c
}

func sanitize(s string) string { return strings.NewReplacer("/", "_", " ", "_").Replace(s) }

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (c *consumer) pid() int { return c.cmd.Process.Pid }

func (c *consumer) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// kill9 sends SIGKILL and waits for the process to be gone.
func (c *consumer) kill9() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

func (c *consumer) signal(sig syscall.Signal) {
	c.t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("signal %s to %s: %v", sig, c.name, err)
	}
}

// term sends SIGTERM and requires a clean exit (status 0) within limit.
func (c *consumer) term(limit time.Duration) (time.Duration, error) {
	start := time.Now()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(limit):
		c.kill9()
		return time.Since(start), fmt.Errorf("%s did not exit within %s of SIGTERM", c.name, limit)
	}
	if c.err != nil {
		return time.Since(start), fmt.Errorf("%s exited with %v after SIGTERM, want status 0", c.name, c.err)
	}
	return time.Since(start), nil
}

// waitExit waits until the process ended and reports whether SIGKILL ended it.
func (c *consumer) waitExit(limit time.Duration) (killed bool, err error) {
	select {
	case <-c.done:
	case <-time.After(limit):
		return false, fmt.Errorf("%s still running after %s", c.name, limit)
	}
	ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL, nil
}

// metric returns the sum of every series of name on the process's /metrics,
// and whether the name was exposed at all.
func (c *consumer) metric(name string) (float64, bool, error) {
	cl := http.Client{Timeout: 2 * time.Second}
	res, err := cl.Get("http://" + c.metrics + "/metrics")
	if err != nil {
		return 0, false, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, false, err
	}
	return parseMetric(string(body), name)
}

// parseMetric sums the samples of name in a Prometheus text exposition.
func parseMetric(body, name string) (float64, bool, error) {
	var sum float64
	found := false
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue // a longer name sharing the prefix
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			return 0, false, fmt.Errorf("parse %q: %w", line, err)
		}
		sum += v
		found = true
	}
	return sum, found, sc.Err()
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
			return fmt.Errorf("%s %s: %w\n%s", script, strings.Join(args, " "), err, tail(out.String(), 2048))
		}
		t.Logf("%s %s: %s", script, strings.Join(args, " "), strings.TrimSpace(tail(out.String(), 300)))
		return nil
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s %s did not finish within %s\n%s", script, strings.Join(args, " "), limit, tail(out.String(), 2048))
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
