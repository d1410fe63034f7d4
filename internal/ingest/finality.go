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
	l.seal(ctx, now)
}

// sealWriteTimeout bounds one attempt to write a seal record.
const sealWriteTimeout = 10 * time.Second

// seal writes a seal record into the partition when it has been caught up
// and without records for SealIdleAfter while its current segment holds
// groups (written, but not complete until something ends the segment). The
// seal comes back through the fetch like any record and ends the segment
// there; until then, and after a failure, nothing is written again for
// SealIdleAfter. Best effort: a partition that is not sealed is only
// compacted later.
func (l *partitionLoop) seal(ctx context.Context, now time.Time) {
	after := l.c.cfg.SealIdleAfter
	if after <= 0 || now.Sub(l.lastRecord) < after || now.Sub(l.lastSeal) < after ||
		l.proc.state.Groups() == 0 || !l.c.status.caughtUp(l.partition) {
		return
	}
	l.lastSeal = now
	wctx, cancel := context.WithTimeout(ctx, sealWriteTimeout)
	defer cancel()
	if err := writeSeal(wctx, l.c.client, l.topic, l.partition); err != nil {
		l.c.metrics.sealErrors.Inc()
		l.log.Warn().Err(err).Dur("retry_in", after).
			Msg("write seal record (the consumer needs write access to the topic; until then the partition's newest segment is not compacted)")
		return
	}
	l.c.metrics.sealsWritten.Inc()
	l.log.Info().Int64("segment", l.proc.state.Segment()).Int("groups", l.proc.state.Groups()).
		Msg("partition idle: seal record written to end its segment")
}
