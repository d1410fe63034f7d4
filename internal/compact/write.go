package compact

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
)

// ErrFenced is returned, wrapped, when the server refused manifests because
// the run exceeded COMPACT_MAX_RUN; the compact rows written are orphans
// nobody reads, and the next run starts over.
var ErrFenced = errors.New("run exceeded COMPACT_MAX_RUN; manifests not published")

// batches cuts plans into runs of at most n.
func batches(plans []plan, n int) [][]plan {
	var out [][]plan
	for len(plans) > n {
		out = append(out, plans[:n])
		plans = plans[n:]
	}
	if len(plans) > 0 {
		out = append(out, plans)
	}
	return out
}

// writeRows writes the compact rows of every plan, BatchWindows windows per
// INSERT ... SELECT: per window, the compact rows of its base manifest plus
// the raw pieces (FINAL: the longest prefix of each) that next folds and
// base did not, grouped by window and dimensions.
// Rows are written under next.id and are not read until its manifest exists.
func (c *Compactor) writeRows(ctx context.Context, w aggregate.Window, plans []plan) error {
	for _, b := range batches(plans, c.cfg.BatchWindows) {
		if err := c.exec(ctx, c.foldQuery(w, b), c.cfg.Topic, c.cfg.Topic); err != nil {
			return fmt.Errorf("write usage_compact_%s (%d windows from %s): %w", w.Name, len(b),
				time.Unix(b[0].windowStart, 0).UTC().Format(time.RFC3339), err)
		}
	}
	return nil
}

func (c *Compactor) foldQuery(w aggregate.Window, b []plan) string {
	starts := make([]uint64, len(b))
	ids := make([]uint64, len(b))
	var bases, ranges []string
	for i, p := range b {
		starts[i], ids[i] = uint64(p.windowStart), p.next.id
		if p.base.generation > 0 {
			bases = append(bases, "("+strconv.FormatInt(p.windowStart, 10)+", "+strconv.FormatUint(p.base.id, 10)+")")
		}
		cond := "window_start = " + dateTime(p.windowStart)
		if folded, ok := p.base.folded(); ok {
			cond += " AND NOT " + folded
		}
		to, _ := p.next.folded() // next lists every partition of base and more
		ranges = append(ranges, "("+cond+" AND "+to+")")
	}
	from, to := dateTime(b[0].windowStart), dateTime(b[len(b)-1].windowStart)
	baseRows := "0" // no base in this batch: read nothing
	if len(bases) > 0 {
		baseRows = "(toUInt32(window_start), compaction_id) IN (" + strings.Join(bases, ", ") + ")"
	}
	return "INSERT INTO " + c.database + ".usage_compact_" + w.Name +
		" (window_start, " + dimensionColumns + ", topic, compaction_id, " + measureColumns + ")" +
		" SELECT window_start, " + dimensionColumns + ", topic, transform(toUInt32(window_start), " +
		arrayLiteral(starts, "Array(UInt32)") + ", " + arrayLiteral(ids, "Array(UInt64)") + ", toUInt64(0)), " +
		measureFolds + " FROM (" +
		"SELECT window_start, " + dimensionColumns + ", topic, " + measureColumns +
		" FROM " + c.database + ".usage_compact_" + w.Name + " FINAL WHERE topic = ? AND window_start >= " + from +
		" AND window_start <= " + to + " AND " + baseRows +
		" UNION ALL SELECT window_start, " + dimensionColumns + ", topic, " + measureColumns +
		" FROM " + c.database + ".usage_rollup_" + w.Name + " FINAL WHERE topic = ? AND window_start >= " + from +
		" AND window_start <= " + to + " AND (" + strings.Join(ranges, " OR ") + ")" +
		") GROUP BY window_start, " + dimensionColumns + ", topic"
}

// publish writes the manifests of plans, after their compact rows are
// durable. The INSERT ... SELECT filters on the server clock: nothing is
// inserted after deadline (start of the run + MaxRun), which is what lets
// deleteFolded trust that no compactor still builds on an older manifest.
func (c *Compactor) publish(ctx context.Context, w aggregate.Window, plans []plan, deadline time.Time) error {
	for _, b := range batches(plans, c.cfg.BatchWindows) {
		q, ids := c.publishQuery(b, deadline)
		if err := c.exec(ctx, q, c.cfg.Topic, w.Name); err != nil {
			return fmt.Errorf("publish %d manifests of window %s: %w", len(b), w.Name, err)
		}
		var landed uint64
		if err := c.queryRow(ctx, "SELECT count() FROM "+c.database+".usage_compactions WHERE topic = ? AND window = ?"+
			" AND compaction_id IN ("+uintList(ids)+")", []any{&landed}, c.cfg.Topic, w.Name); err != nil {
			return fmt.Errorf("check manifests of window %s: %w", w.Name, err)
		}
		if landed < uint64(len(b)) {
			return fmt.Errorf("window %s: %w", w.Name, ErrFenced)
		}
	}
	return nil
}

// publishQuery renders the fenced INSERT of b's manifests; it binds the
// topic and the window name.
func (c *Compactor) publishQuery(b []plan, deadline time.Time) (string, []uint64) {
	starts := make([]uint64, len(b))
	gens := make([]uint64, len(b))
	ids := make([]uint64, len(b))
	parts := make([]string, len(b))
	belows := make([]string, len(b))
	segs := make([]string, len(b))
	for i, p := range b {
		starts[i], gens[i], ids[i] = uint64(p.windowStart), p.next.generation, p.next.id
		parts[i] = arrayLiteral(p.next.partitions, "Array(Int32)")
		belows[i] = arrayLiteral(p.next.below, "Array(Int64)")
		segs[i] = arrayLiteral(p.next.belowSeg, "Array(Int64)")
	}
	n := strconv.Itoa(len(b))
	q := "INSERT INTO " + c.database + ".usage_compactions" +
		" (topic, window, window_start, generation, compaction_id, partitions, below, below_segment, created_at)" +
		" SELECT ?, ?, toDateTime(arrayElement(" + arrayLiteral(starts, "Array(UInt32)") + ", number + 1), 'UTC')," +
		" arrayElement(" + arrayLiteral(gens, "Array(UInt64)") + ", number + 1)," +
		" arrayElement(" + arrayLiteral(ids, "Array(UInt64)") + ", number + 1)," +
		" arrayElement([" + strings.Join(parts, ", ") + "], number + 1)," +
		" arrayElement([" + strings.Join(belows, ", ") + "], number + 1)," +
		" arrayElement([" + strings.Join(segs, ", ") + "], number + 1), now()" +
		" FROM numbers(" + n + ") WHERE now() <= " + dateTime(deadline.Unix())
	return q, ids
}

// deleteFolded deletes, with one mutation per BatchWindows windows, the raw
// pieces below the frontier of each window's newest manifest, and the
// compact rows of the manifests it superseded, when that newest manifest
// was published more than MaxRun + Settle ago: by then every compactor that
// read an older manifest has passed its deadline, so nobody reads those rows
// again, and the view has excluded them since the manifest appeared. The
// frontier used is the one that passed the age test, read in the same
// query: a manifest published since may be the base of a compactor still
// reading raw pieces above the old frontier. It returns the number of raw
// rows the mutations delete.
func (c *Compactor) deleteFolded(ctx context.Context, w aggregate.Window) (uint64, error) {
	age := strconv.FormatInt(int64((c.cfg.MaxRun+c.cfg.Settle)/time.Second)+1, 10)
	type old struct {
		manifest
		superseded []uint64
	}
	settled := map[int64]old{}
	err := c.query(ctx, "SELECT toUInt32(window_start), argMax(compaction_id, (generation, compaction_id)), "+
		"argMax(partitions, (generation, compaction_id)), argMax(below, (generation, compaction_id)), "+
		"argMax(below_segment, (generation, compaction_id)), "+
		"argMax(created_at, (generation, compaction_id)) AS at, groupUniqArray(compaction_id) FROM "+c.database+
		".usage_compactions WHERE topic = ? AND window = ? GROUP BY window_start HAVING at <= now() - "+age,
		func(scan func(...any) error) error {
			var ws uint32
			var m old
			var at time.Time
			var ids []uint64
			if err := scan(&ws, &m.id, &m.partitions, &m.below, &m.belowSeg, &at, &ids); err != nil {
				return err
			}
			m.normalize()
			for _, id := range ids {
				if id != m.id {
					m.superseded = append(m.superseded, id)
				}
			}
			settled[int64(ws)] = m
			return nil
		}, c.cfg.Topic, w.Name)
	if err != nil {
		return 0, fmt.Errorf("read settled manifests of window %s: %w", w.Name, err)
	}
	var starts []int64
	var total uint64
	err = c.query(ctx, "SELECT toUInt32(window_start) AS ws, count() FROM "+c.database+".usage_rollup_"+w.Name+
		" ANY INNER JOIN ("+newestFrontier(c.database, w.Name, "folded_at <= now() - "+age)+
		") AS frontier USING (topic, window_start, `partition`) WHERE topic = ? AND (chunk < folded_below OR segment < folded_segment) GROUP BY ws ORDER BY ws",
		func(scan func(...any) error) error {
			var ws uint32
			var n uint64
			if err := scan(&ws, &n); err != nil {
				return err
			}
			if _, ok := settled[int64(ws)]; ok {
				starts, total = append(starts, int64(ws)), total+n
			}
			return nil
		}, c.cfg.Topic, c.cfg.Topic)
	if err != nil {
		return 0, fmt.Errorf("count folded rows of usage_rollup_%s: %w", w.Name, err)
	}
	for len(starts) > 0 {
		n := min(len(starts), c.cfg.BatchWindows)
		var raw, compact []string
		for _, ws := range starts[:n] {
			m := settled[ws]
			if folded, ok := m.folded(); ok {
				raw = append(raw, "(window_start = "+dateTime(ws)+" AND "+folded+")")
			}
			if len(m.superseded) > 0 {
				compact = append(compact, "(window_start = "+dateTime(ws)+" AND compaction_id IN ("+uintList(m.superseded)+"))")
			}
		}
		starts = starts[n:]
		for _, d := range []struct {
			table string
			conds []string
		}{{"usage_rollup_" + w.Name, raw}, {"usage_compact_" + w.Name, compact}} {
			if len(d.conds) == 0 {
				continue
			}
			stmt := "ALTER TABLE " + c.database + "." + d.table + " DELETE WHERE topic = ? AND (" + strings.Join(d.conds, " OR ") + ")"
			if err := c.exec(ctx, stmt, c.cfg.Topic); err != nil {
				return 0, fmt.Errorf("delete folded rows of %s: %w", d.table, err)
			}
		}
	}
	return total, nil
}

// waitMutations waits until the database has no unfinished mutation.
func (c *Compactor) waitMutations(ctx context.Context) error {
	for {
		var pending uint64
		if err := c.queryRow(ctx, "SELECT count() FROM system.mutations WHERE database = ? AND is_done = 0",
			[]any{&pending}, c.conn.Database()); err != nil {
			return fmt.Errorf("wait for deletions: %w", err)
		}
		if pending == 0 {
			return nil
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("wait for deletions (%d mutations pending): %w", pending, err)
		}
	}
}

func (c *Compactor) exec(ctx context.Context, q string, args ...any) error {
	ctx, cancel := c.conn.StatementContext(ctx)
	defer cancel()
	return c.conn.Exec(ctx, q, args...)
}

func (c *Compactor) queryRow(ctx context.Context, q string, dest []any, args ...any) error {
	ctx, cancel := c.conn.StatementContext(ctx)
	defer cancel()
	return c.conn.QueryRow(ctx, q, args...).Scan(dest...)
}

func (c *Compactor) query(ctx context.Context, q string, each func(scan func(...any) error) error, args ...any) error {
	ctx, cancel := c.conn.StatementContext(ctx)
	defer cancel()
	rows, err := c.conn.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Record writes one usage_compaction_runs row per window size of a run.
func (c *Compactor) Record(ctx context.Context, started, finished time.Time, results []Result, runErr error) error {
	msg := ""
	if runErr != nil {
		msg = runErr.Error()
	}
	ctx, cancel := c.conn.StatementContext(ctx)
	defer cancel()
	b, err := c.conn.PrepareBatch(ctx, "INSERT INTO "+c.database+".usage_compaction_runs (started_at, finished_at, topic, "+
		"window, windows_compacted, raw_rows_folded, raw_rows_deleted, oldest_uncompacted, uncompacted_windows, error)")
	if err != nil {
		return fmt.Errorf("record compaction run: %w", err)
	}
	defer b.Close()
	for _, r := range results {
		oldest := int64(0)
		if !r.OldestUncompacted.IsZero() {
			oldest = r.OldestUncompacted.Unix()
		}
		if err := b.Append(started.Unix(), finished.Unix(), c.cfg.Topic, r.Window, uint64(r.Compacted), r.Folded,
			r.Deleted, oldest, uint64(r.Uncompacted), msg); err != nil {
			return fmt.Errorf("record compaction run: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("record compaction run: %w", err)
	}
	return nil
}
