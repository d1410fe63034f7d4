package servicetest

import (
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
)

// Process is a consumer process a test started: its command, its output,
// and the address of its /metrics. The end-to-end tests and the fault suite
// wrap it with their own assertions.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	Out  *SyncBuffer
	// Metrics is the host:port its METRICS_ADDR listens on.
	Metrics string
	done    chan struct{}
	err     error
}

// StartProcess runs binary with args (nil: the service itself) and the
// test's environment plus env ("K=V", later wins) and METRICS_ADDR on a free
// port (env may override it). When
// the test ends it is killed if still running (resumed first, should it be
// stopped), its output is logged if the test failed, and, with logDir set,
// written to logDir/<test>-<name>.log.
func StartProcess(t *testing.T, binary string, args []string, name, logDir string, env ...string) *Process {
	t.Helper()
	p := &Process{Name: name, Out: &SyncBuffer{}, Metrics: FreeAddr(t), done: make(chan struct{})}
	p.Cmd = exec.Command(binary, args...)
	p.Cmd.Env = append(append(os.Environ(), "METRICS_ADDR="+p.Metrics), env...)
	p.Cmd.Stdout, p.Cmd.Stderr = p.Out, p.Out
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.Cmd.Process.Signal(syscall.SIGCONT)
			_ = p.Cmd.Process.Kill()
			<-p.done
		}
		if logDir != "" {
			_ = os.MkdirAll(logDir, 0o755)
			file := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + "-" + name + ".log"
			_ = os.WriteFile(logDir+"/"+file, []byte(p.Out.String()), 0o644)
		}
		if t.Failed() {
			t.Logf("--- output of %s (last 4 KB):\n%s", name, Tail(p.Out.String(), 4096))
		}
	})
	return p
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is how the process exited; valid once Done is closed.
func (p *Process) Err() error { return p.err }

// Kill9 sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill9() {
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Term sends SIGTERM and waits up to limit for a clean exit (status 0); a
// process still running then is killed.
func (p *Process) Term(limit time.Duration) (time.Duration, error) {
	start := time.Now()
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(limit):
		p.Kill9()
		return time.Since(start), fmt.Errorf("%s did not exit within %s of SIGTERM", p.Name, limit)
	}
	if p.err != nil {
		return time.Since(start), fmt.Errorf("%s exited with %v after SIGTERM, want status 0", p.Name, p.err)
	}
	return time.Since(start), nil
}

// WaitExit waits up to limit for the process to end and reports whether
// SIGKILL ended it.
func (p *Process) WaitExit(limit time.Duration) (killed bool, err error) {
	select {
	case <-p.done:
	case <-time.After(limit):
		return false, fmt.Errorf("%s still running after %s", p.Name, limit)
	}
	ws, ok := p.Cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL, nil
}

// Scrape returns the process's /metrics page.
func (p *Process) Scrape() (string, error) {
	cl := http.Client{Timeout: 2 * time.Second}
	res, err := cl.Get("http://" + p.Metrics + "/metrics")
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return string(body), err
}

// FreeAddr returns a loopback address nobody listens on right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Tail returns the last n bytes of s.
func Tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// ParseMetrics sums the samples of each metric of a Prometheus text
// exposition over their labels.
func ParseMetrics(body string) (map[string]float64, error) {
	out := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		name, _, _ := strings.Cut(line, " ")
		name, _, _ = strings.Cut(name, "{")
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			return nil, fmt.Errorf("parse %q: %w", line, err)
		}
		out[name] += v
	}
	return out, nil
}
