package main

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/usage-rollup/usage-rollup/internal/chconn"
	"github.com/usage-rollup/usage-rollup/internal/compact"
)

// compactOnce runs one compaction (the Helm CronJob's command): it logs one
// JSON line per window size and records the run in usage_compaction_runs,
// also when it fails part way. Nothing to do is a success.
func compactOnce(ctx context.Context, cfg config, conn *chconn.Conn, log zerolog.Logger) error {
	c, err := compact.New(conn, cfg.compact, log)
	if err != nil {
		return err
	}
	started := time.Now()
	results, runErr := c.Run(ctx)
	finished := time.Now()
	for _, r := range results {
		ev := log.Info()
		if runErr != nil {
			ev = log.Error().Err(runErr)
		}
		ev.Str("window", r.Window).Int("windows_compacted", r.Compacted).Uint64("raw_rows_folded", r.Folded).
			Uint64("raw_rows_deleted", r.Deleted).Int("uncompacted_windows", r.Uncompacted).
			Time("oldest_uncompacted", r.OldestUncompacted).Dur("took", finished.Sub(started)).Msg("compaction run")
	}
	// The record outlives a cancelled run: it is what the SQL alert reads.
	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := c.Record(recordCtx, started, finished, results, runErr); err != nil {
		log.Warn().Err(err).Msg("record compaction run")
	}
	return runErr
}
