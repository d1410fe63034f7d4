// Package rollupfake is the tests' one in-memory stand-in for the rollup
// tables: ReplacingMergeTree(version) as FINAL reads it, keyed like
// usage_rollup_<w>, usage_chunks and usage_rejected_log. Tests of the
// aggregation and of the consumer's own logic write through it instead of a
// ClickHouse server; tests of the writer itself use the real server.
package rollupfake

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
)

// ErrDown is what every call returns while the table is Down.
var ErrDown = errors.New("clickhouse unreachable (rollupfake)")

// Key mirrors the ORDER BY of usage_rollup_<w>, without the topic.
type Key struct {
	Window      string
	WindowStart int64
	Dims        aggregate.Dims
	Partition   int32
	Chunk       int64
	Segment     int64
}

// Row is the row FINAL shows for a Key.
type Row struct {
	Version  uint64
	Measures aggregate.Measures
}

// Table holds the rows. Its methods are safe for concurrent use; they give
// it the consumer's BatchWriter shape.
type Table struct {
	windows []string // configured window names, in order

	mu        sync.Mutex
	rows      map[Key]Row
	progress  map[[2]int64]aggregate.Progress // (partition, chunk) -> row with the largest LastOffset
	rejected  map[[2]int64]string             // (partition, offset) -> reason
	next      map[int32]int64                 // partition -> one past the last offset of a complete write
	failedBy  map[int32]int                   // partition -> writes refused while Down
	conflicts []string

	// Down makes every call fail with ErrDown, as an unreachable server.
	Down atomic.Bool
	// Failed counts the calls that failed because the table was Down.
	Failed atomic.Int64
	// PartialOnce makes the next Write store the first window's rows only
	// and then fail: an INSERT sequence cut short by a crash.
	PartialOnce atomic.Bool
}

// New returns an empty table for the given windows.
func New(windows []aggregate.Window) *Table {
	names := make([]string, len(windows))
	for i, w := range windows {
		names[i] = w.Name
	}
	return &Table{windows: names, rows: map[Key]Row{}, progress: map[[2]int64]aggregate.Progress{},
		rejected: map[[2]int64]string{}, next: map[int32]int64{}, failedBy: map[int32]int{}}
}

// Write stores b as the sink does: every window's rows, the rejections, and
// the progress row last. Two rows with the same key and version but other
// measures are recorded as a conflict (ReplacingMergeTree could keep either).
func (t *Table) Write(_ context.Context, b *aggregate.Batch) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.Down.Load() {
		t.Failed.Add(1)
		t.failedBy[b.Partition]++
		return ErrDown
	}
	partial := t.PartialOnce.Swap(false)
	for i, w := range b.Windows {
		if partial && i > 0 {
			return ErrDown
		}
		for _, r := range w.Rows {
			k := Key{w.Window.Name, r.WindowStart, r.Dims, b.Partition, b.Chunk, b.Segment}
			old, ok := t.rows[k]
			if ok && old.Version == b.Version() && old.Measures != r.Measures {
				t.conflicts = append(t.conflicts, fmt.Sprintf("key %+v version %d written with other measures: %+v, then %+v",
					k, b.Version(), old.Measures, r.Measures))
			}
			// A replay may write a complete piece again under another
			// version (its flushes fall elsewhere), never with other sums.
			changes := !ok || b.Version() > old.Version && old.Measures != r.Measures
			if changes && t.complete(b.Partition, b.Chunk, b.Segment) {
				t.conflicts = append(t.conflicts, fmt.Sprintf("key %+v of a complete piece changed to version %d (was %d): "+
					"a compaction that folded it would lose the difference", k, b.Version(), old.Version))
			}
			if !ok || b.Version() >= old.Version {
				t.rows[k] = Row{b.Version(), r.Measures}
			}
		}
	}
	for _, r := range b.Rejected {
		t.rejected[[2]int64{int64(b.Partition), r.Offset}] = r.Reason
	}
	pk := [2]int64{int64(b.Partition), b.Chunk}
	if old, ok := t.progress[pk]; !ok || b.Progress.LastOffset >= old.LastOffset {
		t.progress[pk] = b.Progress
	}
	t.next[b.Partition] = max(t.next[b.Partition], b.Progress.LastOffset+1)
	return nil
}

// complete reports whether the piece (partition, chunk, segment) is complete
// as a compactor reads usage_chunks: a later chunk of the partition has a
// progress row, or the chunk's newest progress row names a later open
// segment. Complete pieces must never change again.
func (t *Table) complete(partition int32, chunk, segment int64) bool {
	if p, ok := t.progress[[2]int64{int64(partition), chunk}]; ok && segment < p.OpenSegment {
		return true
	}
	for pk := range t.progress {
		if pk[0] == int64(partition) && pk[1] > chunk {
			return true
		}
	}
	return false
}

// WriteBatches writes each batch as Write does, stopping at the first error.
// While Down, every batch counts as a refused write of its partition.
func (t *Table) WriteBatches(ctx context.Context, bs []*aggregate.Batch) error {
	if t.Down.Load() {
		for _, b := range bs {
			_ = t.Write(ctx, b)
		}
		return ErrDown
	}
	for _, b := range bs {
		if err := t.Write(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// WriteFinalities accepts finality rows (the fake does not keep them).
func (t *Table) WriteFinalities(context.Context, []aggregate.Finality) error {
	if t.Down.Load() {
		return ErrDown
	}
	return nil
}

// ReadChunk returns the newest segment's rows and the progress row of a
// chunk, as the sink reads them with FINAL.
func (t *Table) ReadChunk(_ context.Context, _ string, partition int32, chunk int64) (*aggregate.StoredChunk, error) {
	if t.Down.Load() {
		t.Failed.Add(1)
		return nil, ErrDown
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	sc := &aggregate.StoredChunk{Segment: -1, Windows: make([][]aggregate.StoredRow, len(t.windows)),
		Progress: aggregate.Progress{LastOffset: -1}}
	for k := range t.rows {
		if k.Partition == partition && k.Chunk == chunk {
			sc.Segment = max(sc.Segment, k.Segment)
		}
	}
	for k, r := range t.rows {
		if k.Partition != partition || k.Chunk != chunk || k.Segment != sc.Segment {
			continue
		}
		for i, name := range t.windows {
			if name == k.Window {
				sc.Windows[i] = append(sc.Windows[i], aggregate.StoredRow{
					Row: aggregate.Row{WindowStart: k.WindowStart, Dims: k.Dims, Measures: r.Measures}, Version: int64(r.Version)})
			}
		}
	}
	if p, ok := t.progress[[2]int64{int64(partition), chunk}]; ok {
		sc.Progress = p
	}
	return sc, nil
}

// Transient reports ErrDown as transient, like an outage.
func (t *Table) Transient(err error) bool { return errors.Is(err, ErrDown) }

// Sum returns the totals of one window over every row: the analyst's sum()
// over the view.
func (t *Table) Sum(window string) aggregate.Measures {
	t.mu.Lock()
	defer t.mu.Unlock()
	var m aggregate.Measures
	for k, r := range t.rows {
		if k.Window == window {
			m.Merge(&r.Measures)
		}
	}
	return m
}

// ByWorkspaceModel returns one window's totals per (workspace, model).
func (t *Table) ByWorkspaceModel(window string) map[[2]string]aggregate.Measures {
	t.mu.Lock()
	defer t.mu.Unlock()
	by := map[[2]string]aggregate.Measures{}
	for k, r := range t.rows {
		if k.Window != window {
			continue
		}
		key := [2]string{k.Dims.WorkspaceID, k.Dims.Model}
		m := by[key]
		m.Merge(&r.Measures)
		by[key] = m
	}
	return by
}

// Next returns one past the last offset of partition that a complete Write covered.
func (t *Table) Next(partition int32) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.next[partition]
}

// FailedWrites returns how many writes of partition were refused while Down.
func (t *Table) FailedWrites(partition int32) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failedBy[partition]
}

// Rejected returns the number of rejected offsets stored.
func (t *Table) Rejected() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.rejected)
}

// Segments returns the number of distinct (partition, chunk, segment) pieces.
func (t *Table) Segments() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	seen := map[[3]int64]bool{}
	for k := range t.rows {
		seen[[3]int64{int64(k.Partition), k.Chunk, k.Segment}] = true
	}
	return len(seen)
}

// Pieces returns the measures FINAL shows for every key.
func (t *Table) Pieces() map[Key]aggregate.Measures {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[Key]aggregate.Measures, len(t.rows))
	for k, r := range t.rows {
		out[k] = r.Measures
	}
	return out
}

// Seals sums usage_chunks.seals over the partition's chunks.
func (t *Table) Seals(partition int32) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n uint64
	for pk, p := range t.progress {
		if pk[0] == int64(partition) {
			n += p.Seals
		}
	}
	return n
}

// Conflicts lists rows written twice with the same key and version but
// different measures, and rows of complete pieces that changed.
func (t *Table) Conflicts() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.conflicts...)
}
