package compact

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/zeebo/xxh3"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
)

// frontier divides each listed partition's raw pieces: a piece is below it
// when its chunk is below below[i] or its segment below belowSeg[i]. A
// manifest's frontier says what it folded; the complete-pieces frontier
// (Compactor.complete) what may be folded. A partition not listed has
// nothing below.
type frontier struct {
	partitions []int32 // ascending
	below      []int64 // per partition, a chunk
	belowSeg   []int64 // per partition, a segment (its first offset)
}

// of returns partition p's frontier, 0 and 0 if it is not listed.
func (f frontier) of(p int32) (chunk, segment int64) {
	if i, ok := slices.BinarySearch(f.partitions, p); ok {
		return f.below[i], f.belowSeg[i]
	}
	return 0, 0
}

// normalize gives a manifest written before below_segment existed (an
// empty array) a segment frontier of 0 per partition: it folded by chunk.
func (f *frontier) normalize() {
	if len(f.belowSeg) != len(f.partitions) {
		f.belowSeg = make([]int64, len(f.partitions))
	}
}

// manifest is one row of usage_compactions. generation 0 is "no manifest".
type manifest struct {
	generation uint64
	id         uint64
	frontier   // what it folded
}

// plan is the compaction of one window: from base (the newest manifest when
// planned) to next, folding rawRows physical raw rows.
type plan struct {
	windowStart int64 // Unix seconds
	base, next  manifest
	rawRows     uint64
}

// complete returns, per partition of the topic in usage_chunks, where the
// complete pieces end: the largest chunk with a row (every chunk before it
// is complete, since a partition writes a chunk's last batch, usage_chunks
// row last, before it begins the next), and that chunk's open segment as its
// newest row says (every segment below it was ended by a seal record or the
// group cap, and written before the row that names the next one).
func (c *Compactor) complete(ctx context.Context) (frontier, error) {
	ctx, cancel := c.conn.StatementContext(ctx)
	defer cancel()
	var f frontier
	rows, err := c.conn.Query(ctx, "SELECT `partition`, max(chunk), argMax(open_segment, (chunk, last_offset)) FROM "+
		c.database+".usage_chunks WHERE topic = ? GROUP BY `partition` ORDER BY `partition`", c.cfg.Topic)
	if err != nil {
		return f, fmt.Errorf("read the complete pieces' frontier: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p int32
		var chunk, segment int64
		if err := rows.Scan(&p, &chunk, &segment); err != nil {
			return f, fmt.Errorf("read the complete pieces' frontier: %w", err)
		}
		f.partitions, f.below, f.belowSeg = append(f.partitions, p), append(f.below, chunk), append(f.belowSeg, segment)
	}
	return f, rows.Err()
}

// closedThrough returns the topic's finality (usage_progress_topic), ok
// false when no partition recorded one yet.
func (c *Compactor) closedThrough(ctx context.Context) (sec int64, ok bool, err error) {
	ctx, cancel := c.conn.StatementContext(ctx)
	defer cancel()
	rows, err := c.conn.Query(ctx, "SELECT toUInt32(closed_through) FROM "+c.database+
		".usage_progress_topic WHERE topic = ?", c.cfg.Topic)
	if err != nil {
		return 0, false, fmt.Errorf("read closed_through: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return 0, false, fmt.Errorf("read closed_through: %w", err)
		}
		sec, ok = int64(v), true
	}
	return sec, ok, rows.Err()
}

// pending returns the closed windows with raw rows of complete pieces that
// their newest manifest has not folded, in ascending order, with the number
// of such physical rows.
func (c *Compactor) pending(ctx context.Context, w aggregate.Window) (starts []int64, counts []uint64, err error) {
	closed, ok, err := c.closedThrough(ctx)
	if err != nil || !ok {
		return nil, nil, err
	}
	f, err := c.complete(ctx)
	if err != nil {
		return nil, nil, err
	}
	complete, ok := f.folded()
	if !ok {
		return nil, nil, nil
	}
	q := c.pendingQuery(w, closed-int64(w.Size/time.Second), complete)
	ctx, cancel := c.conn.StatementContext(ctx)
	defer cancel()
	rows, err := c.conn.Query(ctx, q, c.cfg.Topic, c.cfg.Topic)
	if err != nil {
		return nil, nil, fmt.Errorf("find windows to compact in usage_rollup_%s: %w", w.Name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var ws uint32
		var n uint64
		if err := rows.Scan(&ws, &n); err != nil {
			return nil, nil, fmt.Errorf("find windows to compact in usage_rollup_%s: %w", w.Name, err)
		}
		starts, counts = append(starts, int64(ws)), append(counts, n)
	}
	return starts, counts, rows.Err()
}

// pendingQuery counts, per window starting at or before lastStart, the raw
// rows of complete pieces (the condition complete) not folded by the
// window's newest manifest. It binds the topic twice.
func (c *Compactor) pendingQuery(w aggregate.Window, lastStart int64, complete string) string {
	return "SELECT toUInt32(window_start) AS ws, count() FROM " + c.database + ".usage_rollup_" + w.Name +
		" ANY LEFT JOIN (" + newestFrontier(c.database, w.Name, "") + ") AS frontier USING (topic, window_start, `partition`)" +
		" WHERE topic = ? AND window_start <= " + dateTime(lastStart) +
		" AND chunk >= ifNull(folded_below, 0) AND segment >= ifNull(folded_segment, 0) AND " + complete +
		" GROUP BY ws ORDER BY ws"
}

// newest reads the newest manifest of each window in [from, to].
func (c *Compactor) newest(ctx context.Context, w aggregate.Window, from, to int64) (map[int64]manifest, error) {
	q := "SELECT toUInt32(window_start), max(generation), argMax(compaction_id, (generation, compaction_id)), " +
		"argMax(partitions, (generation, compaction_id)), argMax(below, (generation, compaction_id)), " +
		"argMax(below_segment, (generation, compaction_id)) FROM " +
		c.database + ".usage_compactions WHERE topic = ? AND window = ? AND window_start >= " + dateTime(from) +
		" AND window_start <= " + dateTime(to) + " GROUP BY window_start"
	ctx, cancel := c.conn.StatementContext(ctx)
	defer cancel()
	rows, err := c.conn.Query(ctx, q, c.cfg.Topic, w.Name)
	if err != nil {
		return nil, fmt.Errorf("read manifests of window %s: %w", w.Name, err)
	}
	defer rows.Close()
	out := map[int64]manifest{}
	for rows.Next() {
		var ws uint32
		var m manifest
		if err := rows.Scan(&ws, &m.generation, &m.id, &m.partitions, &m.below, &m.belowSeg); err != nil {
			return nil, fmt.Errorf("read manifests of window %s: %w", w.Name, err)
		}
		m.normalize()
		out[int64(ws)] = m
	}
	return out, rows.Err()
}

// plan lists the compactions of this run for window size w: at most
// MaxWindows windows, oldest first.
func (c *Compactor) plan(ctx context.Context, w aggregate.Window) ([]plan, error) {
	starts, counts, err := c.pending(ctx, w)
	if err != nil || len(starts) == 0 {
		return nil, err
	}
	if len(starts) > c.cfg.MaxWindows {
		starts, counts = starts[:c.cfg.MaxWindows], counts[:c.cfg.MaxWindows]
	}
	// The frontier is read again after pending: it only grows, and the
	// manifests below fold up to it.
	f, err := c.complete(ctx)
	if err != nil {
		return nil, err
	}
	bases, err := c.newest(ctx, w, starts[0], starts[len(starts)-1])
	if err != nil {
		return nil, err
	}
	plans := make([]plan, 0, len(starts))
	for i, ws := range starts {
		base := bases[ws]
		plans = append(plans, plan{
			windowStart: ws, base: base, rawRows: counts[i],
			next: nextManifest(c.cfg.Topic, w.Name, ws, base, f),
		})
	}
	return plans, nil
}

// nextManifest folds every complete piece (frontier f) on top of base. Its
// frontier never goes below base's in any partition, and its id is a
// function of what it folds, so a re-run writes the same rows and the same
// manifest.
func nextManifest(topic, window string, windowStart int64, base manifest, f frontier) manifest {
	next := manifest{generation: base.generation + 1}
	next.partitions = slices.Clone(base.partitions)
	for _, p := range f.partitions {
		if _, ok := slices.BinarySearch(next.partitions, p); !ok {
			next.partitions = append(next.partitions, p)
		}
	}
	slices.Sort(next.partitions)
	next.below = make([]int64, len(next.partitions))
	next.belowSeg = make([]int64, len(next.partitions))
	for i, p := range next.partitions {
		b, s := base.of(p)
		fb, fs := f.of(p)
		next.below[i], next.belowSeg[i] = max(b, fb), max(s, fs)
	}
	h := xxh3.New()
	var buf [8]byte
	put := func(v uint64) {
		binary.LittleEndian.PutUint64(buf[:], v)
		_, _ = h.Write(buf[:])
	}
	_, _ = h.WriteString(topic + "\x00" + window + "\x00")
	put(uint64(windowStart))
	put(base.generation)
	put(base.id)
	for i, p := range next.partitions {
		put(uint64(p))
		put(uint64(next.below[i]))
		if next.belowSeg[i] != 0 { // ids of chunk-only manifests stay what they were
			put(uint64(next.belowSeg[i]) | 1<<63)
		}
	}
	next.id = h.Sum64()
	if next.id == 0 { // 0 is transform's "no compaction"
		next.id = 1
	}
	return next
}

// uncompacted returns how many closed windows hold unfolded complete
// pieces, and the oldest one's start.
func (c *Compactor) uncompacted(ctx context.Context, w aggregate.Window) (int, time.Time, error) {
	starts, _, err := c.pending(ctx, w)
	if err != nil || len(starts) == 0 {
		return 0, time.Time{}, err
	}
	return len(starts), time.Unix(starts[0], 0).UTC(), nil
}

// uintList renders unsigned integers comma-separated.
func uintList(v []uint64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.FormatUint(x, 10)
	}
	return strings.Join(parts, ",")
}
