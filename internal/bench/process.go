package bench

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// stopTimeout bounds a process's exit after SIGTERM. The consumer's own
// shutdown deadline is SHUTDOWN_TIMEOUT (20s by default) per partition write,
// and a caught-up consumer has nothing left to write.
const stopTimeout = 30 * time.Second

// Process is a child process whose output goes to a log file.
type Process struct {
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error
}

// StartProcess runs name with args and exactly the environment env (nothing
// inherited but what env lists), appending its output to logPath.
func StartProcess(logPath string, env []string, name string, args ...string) (*Process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{cmd: cmd, log: f, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.done }

// Err is the process's exit error; valid after Exited is closed.
func (p *Process) Err() error { return p.err }

// Stop sends SIGTERM, waits up to stopTimeout for a clean exit, then kills.
// It returns the exit error, if the exit was not clean.
func (p *Process) Stop() error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return errors.Join(fmt.Errorf("pid %d still running %s after SIGTERM; killed", p.Pid(), stopTimeout), p.err)
	}
}

// BaseEnv is the environment a child gets from this process: only what a Go
// program or the Go runtime reads (PATH, HOME, GOMAXPROCS, GOMEMLIMIT,
// GOGC), so that stray variables of the caller's shell (say a failpoint)
// cannot change the process under test.
func BaseEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "GOMAXPROCS", "GOMEMLIMIT", "GOGC"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}
