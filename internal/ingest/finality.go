package ingest

import (
	"context"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
)

// writeFinality records closed_through when it advanced by at least a
// second. It is best effort: a failure is retried by the next flush.
func (l *partitionLoop) writeFinality(ctx context.Context, closedMs, maxEventMs, next int64, idle bool) {
	closedMs -= closedMs % 1000 // the table stores seconds
	if closedMs <= l.closedMs {
		return
	}
	f := aggregate.Finality{Topic: l.topic, Partition: int32(l.partition), ClosedThroughMs: closedMs,
		MaxEventTimeMs: maxEventMs, CommittedOffset: next, Idle: idle}
	if err := l.c.out.writeFinality(ctx, f); err != nil {
		l.log.Warn().Err(err).Msg("write usage_progress; retried at the next flush")
		return
	}
	l.closedMs = closedMs
	l.c.status.setClosed(l.partition, closedMs)
}

// idle advances closed_through of a partition that is caught up and has seen
// no records for IdleTimeout: any event still to come will be recent, so the
// wall clock minus the allowed lateness bounds what it can reopen.
func (l *partitionLoop) idle(ctx context.Context) {
	now := time.Now()
	if now.Sub(l.lastRecord) < l.c.cfg.IdleTimeout || !l.c.status.caughtUp(l.partition) {
		return
	}
	p := l.proc.state.Progress()
	l.writeFinality(ctx, now.Add(-l.c.agg.AllowedLateness).UnixMilli(), p.MaxEventTimeMs, p.LastOffset+1, true)
}
