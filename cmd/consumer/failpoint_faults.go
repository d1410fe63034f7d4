//go:build faults

package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/ingest"
)

// withFailpoints wraps w in the test build's failpoints (go build -tags
// faults; the end-to-end tests and the fault suite build the consumer so).
// FAULT_CRASH_AFTER_WRITES=N makes the process SIGKILL itself right after the
// write that made its Nth batch durable, before those batches' offsets are
// committed: a crash between a durable write and its commit.
func withFailpoints(w ingest.BatchWriter, log zerolog.Logger) (ingest.BatchWriter, error) {
	v := os.Getenv("FAULT_CRASH_AFTER_WRITES")
	if v == "" {
		return w, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("FAULT_CRASH_AFTER_WRITES: %q is not a count >= 0", v)
	}
	if n == 0 {
		return w, nil
	}
	return &crashAfterWrites{BatchWriter: w, n: n, log: log}, nil
}

type crashAfterWrites struct {
	ingest.BatchWriter
	n      int64
	writes atomic.Int64
	log    zerolog.Logger
}

func (c *crashAfterWrites) WriteBatches(ctx context.Context, bs []*aggregate.Batch) error {
	if err := c.BatchWriter.WriteBatches(ctx, bs); err != nil {
		return err
	}
	if n := c.writes.Add(int64(len(bs))); n >= c.n && n-int64(len(bs)) < c.n {
		c.log.Warn().Int64("last_offset", bs[len(bs)-1].Progress.LastOffset).Msg("failpoint: killing the process between write and commit")
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL cannot be caught; wait for it to land
	}
	return nil
}
