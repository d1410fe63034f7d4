// Package bench holds the parts of the end-to-end benchmark (cmd/benche2e,
// scripts/bench-e2e.sh): Kafka and ClickHouse administration, the two
// comparison pipelines (ClickHouse's Kafka engine and a raw-rows sink), CPU
// accounting from /proc, the analyst queries and the result table.
//
// It measures; it is not part of the service and nothing in the service
// imports it.
package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// It is 100 on every Linux architecture Go supports (the kernel's ABI fixes
// it; sysconf(_SC_CLK_TCK) would need cgo to ask).
const clockTicks = 100

// CPUSeconds returns the user plus system CPU time a process has used so far,
// from /proc/<pid>/stat (fields 14 and 15, utime and stime).
func CPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU time of pid %d: %w", pid, err)
	}
	// The command name (field 2) is in parentheses and may hold spaces or
	// parentheses itself: the fields after it start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat: no ')'", pid)
	}
	fields := bytes.Fields(b[i+1:])
	// fields[0] is field 3 (state), so utime (14) is fields[11], stime fields[12].
	if len(fields) < 13 {
		return 0, fmt.Errorf("parse /proc/%d/stat: %d fields after the name", pid, len(fields))
	}
	var ticks uint64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseUint(string(f), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return float64(ticks) / clockTicks, nil
}

// CPUMeter measures the CPU time a process spends between Start and Stop.
// A pid <= 0 measures nothing: Stop then reports ok false.
type CPUMeter struct {
	pid   int
	start float64
	err   error
}

// StartCPU begins measuring pid. Errors surface in Stop.
func StartCPU(pid int) *CPUMeter {
	m := &CPUMeter{pid: pid}
	if pid > 0 {
		m.start, m.err = CPUSeconds(pid)
	}
	return m
}

// Stop returns the CPU seconds used since StartCPU; ok is false when there was
// no process to measure.
func (m *CPUMeter) Stop() (seconds float64, ok bool, err error) {
	if m.pid <= 0 {
		return 0, false, nil
	}
	if m.err != nil {
		return 0, false, m.err
	}
	end, err := CPUSeconds(m.pid)
	if err != nil {
		return 0, false, err
	}
	return end - m.start, true, nil
}
