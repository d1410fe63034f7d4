//go:build faults

// Package faults is the fault-injection suite: it runs the consumer binary as
// processes against a real Kafka broker and a real ClickHouse server, injects
// one fault per test case (process kills and pauses, network cuts, blackholes,
// delays and lost replies through internal/testsupport/faultproxy, broker and
// server crashes, poison messages, rebalance storms, a group reset) and checks the
// pipeline's invariants once the consumers caught up:
//
//	I1 exact sums per window (1m, 1h) and dimension set against ground truth
//	I2 no offset gaps: accepted + rejected + duplicates per partition = the log
//	I3 the rejected set (partition, offset, reason) = the injected poison set
//	I4 committed offsets never go backwards and never pass durable data
//	I5 lag back to zero within a bound after the fault heals (recovery time)
//	I6 late-event counts = the late events in the log
//	I7 sums unchanged after a full replay
//	I8 memory below its cap during an outage with a growing backlog
//	I9 every rejected message on the dead-letter topic, whole or truncated
//
// Run it with `go test -tags faults ./faults -v` (add -short or FAULTS_SHORT=1
// for the CI form); faults/run.sh runs the full form and writes
// docs/RELIABILITY.md from the measured results.
package faults

import (
	"fmt"
	"os"
	"testing"

	"github.com/usage-rollup/usage-rollup/internal/testsupport/servicetest"
)

// binary is the consumer binary, built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	os.Exit(servicetest.RunWithConsumer(m, "../cmd/consumer", &binary, func(code int) int {
		if path := os.Getenv("FAULTS_REPORT"); path != "" {
			if err := writeReport(path); err != nil {
				fmt.Fprintln(os.Stderr, "write report:", err)
				return 1
			}
		}
		return code
	}))
}
