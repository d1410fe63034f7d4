package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
)

// Memory is a process's resident set, from /proc/<pid>/status.
type Memory struct {
	// RSS is VmRSS: resident now.
	RSS uint64
	// Peak is VmHWM: the most resident at any time so far.
	Peak uint64
}

// ReadMemory returns pid's resident set size and its high-water mark, in bytes.
func ReadMemory(pid int) (Memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	var m Memory
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var kb uint64
		switch line := sc.Text(); {
		case parseKB(line, "VmRSS:", &kb):
			m.RSS, found = kb<<10, found+1
		case parseKB(line, "VmHWM:", &kb):
			m.Peak, found = kb<<10, found+1
		}
	}
	if found != 2 {
		return m, fmt.Errorf("parse /proc/%d/status: no VmRSS or VmHWM", pid)
	}
	return m, nil
}

// parseKB reads a "Name:   1234 kB" line.
func parseKB(line, name string, kb *uint64) bool {
	if len(line) < len(name) || line[:len(name)] != name {
		return false
	}
	_, err := fmt.Sscanf(line[len(name):], "%d kB", kb)
	return err == nil
}
