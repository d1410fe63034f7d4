package consumer

import (
	"context"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
)

// writeFinality records closed_through when it advanced by at least a
// second. It is best effort: a failure is retried by the next flush.
func (w *partitionWorker) writeFinality(ctx context.Context, closedMs, maxEventMs, next int64, idle bool) {
	closedMs -= closedMs % 1000 // the table stores seconds
	if closedMs <= w.closedMs {
		return
	}
	f := aggregate.Finality{Topic: w.topic, Partition: int32(w.partition), ClosedThroughMs: closedMs,
		MaxEventTimeMs: maxEventMs, CommittedOffset: next, Idle: idle}
	if err := w.c.writer.WriteFinality(ctx, f); err != nil {
		w.log.Warn().Err(err).Msg("write usage_progress; retried at the next flush")
		return
	}
	w.closedMs = closedMs
	w.c.status.setClosed(w.partition, closedMs)
}

// idle advances closed_through of a partition that is caught up and has seen
// no records for IdleTimeout: any event still to come will be recent, so the
// wall clock minus the allowed lateness bounds what it can reopen.
func (w *partitionWorker) idle(ctx context.Context) {
	now := time.Now()
	if now.Sub(w.lastRecord) < w.c.cfg.IdleTimeout || !w.c.status.caughtUp(w.partition) {
		return
	}
	p := w.state.Progress()
	w.writeFinality(ctx, now.Add(-w.c.agg.AllowedLateness).UnixMilli(), p.MaxEventTimeMs, p.LastOffset+1, true)
}
