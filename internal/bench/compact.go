package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Compaction settings of the benchmark's `consumer compact` runs. The
// service's COMPACT_MAX_RUN (5m) would make the run that deletes folded raw
// rows wait five minutes after the one that folded them; 30 s is plenty for
// one run over this stream and keeps the benchmark short.
const (
	compactMaxRun = 30 * time.Second
	compactSettle = 5 * time.Second
	// compactRuns bounds the runs: fold, delete, and spares.
	compactRuns = 5
)

// CompactStats is what the compaction step did.
type CompactStats struct {
	Runs              int
	Took              time.Duration
	Compacted, Folded uint64 // windows, raw rows
	Deleted           uint64 // raw rows
}

// SealIdleAfter is the consumer's SEAL_IDLE_AFTER in compaction runs.
const SealIdleAfter = 10 * time.Second

// WaitSealed waits until the last record of each of the topic's partitions
// is a seal record the consumer took (its newest usage_chunks row opens a
// segment at its last offset): every piece is complete, and compaction can
// fold them all. The consumer must run with SEAL_IDLE_AFTER.
func (r Rollup) WaitSealed(ctx context.Context, ch *ClickHouse, partitions int) error {
	q := "SELECT countIf(open = last) FROM (SELECT `partition`, argMax(open_segment, (chunk, last_offset)) AS open, " +
		"max(last_offset) AS last FROM " + quote(r.Database) + ".usage_chunks WHERE topic = '" + r.Topic + "' GROUP BY `partition`)"
	for {
		var sealed uint64
		if err := ch.Uints(ctx, q, &sealed); err != nil {
			return err
		}
		if int(sealed) >= partitions {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d partitions sealed: %w", sealed, partitions, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// WaitClosed waits until usage_progress_topic.closed_through reaches
// through: only windows ending before it are compacted. The consumer must
// still run; its partitions close the last windows once idle
// (IDLE_PARTITION_TIMEOUT, 1m by default).
func (r Rollup) WaitClosed(ctx context.Context, ch *ClickHouse, through time.Time) error {
	q := "SELECT toUInt64(max(closed_through)) FROM " + quote(r.Database) + ".usage_progress_topic WHERE topic = '" + r.Topic + "'"
	for {
		var closed uint64
		if err := ch.Uints(ctx, q, &closed); err != nil {
			return err
		}
		if int64(closed) >= through.Unix() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("closed_through %s has not reached %s: %w", time.Unix(int64(closed), 0).UTC(), through.UTC(), ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// Compact runs `consumer compact` (waiting for its deletions) until a run
// neither folds nor deletes anything, pausing between runs until the last
// run's manifests are old enough for their raw rows to be deleted. Its
// output is appended to logPath.
func (r Rollup) Compact(ctx context.Context, logPath string) (CompactStats, error) {
	var st CompactStats
	begin := time.Now()
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return st, err
	}
	defer log.Close()
	env := append(r.env(), "COMPACT_MAX_RUN="+compactMaxRun.String(), "COMPACT_SETTLE="+compactSettle.String(),
		"COMPACT_WAIT_DELETES=true")
	for st.Runs < compactRuns {
		if st.Runs > 0 {
			select {
			case <-ctx.Done():
				return st, ctx.Err()
			case <-time.After(compactMaxRun + compactSettle + time.Second):
			}
		}
		cmd := exec.CommandContext(ctx, r.Binary, "compact")
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		_, _ = log.Write(out)
		st.Runs++
		if err != nil {
			return st, fmt.Errorf("consumer compact (run %d): %w\n%s", st.Runs, err, tailString(string(out), 2048))
		}
		compacted, folded, deleted := compactLog(out)
		st.Compacted, st.Folded, st.Deleted = st.Compacted+compacted, st.Folded+folded, st.Deleted+deleted
		if compacted == 0 && deleted == 0 {
			break
		}
	}
	st.Took = time.Since(begin)
	return st, nil
}

// compactLog sums the "compaction run" lines of one run's JSON log.
func compactLog(out []byte) (compacted, folded, deleted uint64) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l struct {
			Message   string `json:"message"`
			Compacted uint64 `json:"windows_compacted"`
			Folded    uint64 `json:"raw_rows_folded"`
			Deleted   uint64 `json:"raw_rows_deleted"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Message == "compaction run" {
			compacted, folded, deleted = compacted+l.Compacted, folded+l.Folded, deleted+l.Deleted
		}
	}
	return compacted, folded, deleted
}

func tailString(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// CompactedWindows is Windows after compaction: stored rows are the raw and
// the compact rows (orphans of killed runs included), and groups are read
// from the views, since folded raw rows are deleted.
func (r Rollup) CompactedWindows() []Window {
	out := r.Windows()
	for i := range out {
		w := out[i].Name
		raw := quote(r.Database) + ".usage_rollup_" + w
		compact := quote(r.Database) + ".usage_compact_" + w
		view := quote(r.Database) + ".usage_" + w
		out[i].Rows = "SELECT (SELECT count() FROM " + raw + ") + (SELECT count() FROM " + compact + ")"
		out[i].Groups = "SELECT count() FROM (SELECT DISTINCT window_start, " + strings.Join(dimensions, ", ") + " FROM " + view + ")"
	}
	return out
}
