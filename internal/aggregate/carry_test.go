package aggregate_test

import (
	"context"
	"testing"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/events"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/rollupfake"
)

func carryEvent(id string, tsMs int64) *events.Event {
	return &events.Event{ID: []byte(id), TimeMs: tsMs, WorkspaceID: []byte("ws"), Model: []byte("m"),
		Endpoint: []byte("e"), StatusCode: 200, Usage: events.Usage{InputTokens: 10, TotalTokens: 10}}
}

func carryConfig() aggregate.Config {
	cfg := aggregate.DefaultConfig()
	cfg.ChunkSize = 100
	return cfg
}

// carryStartMs is the event time of offset 0 in the carry tests, Unix ms.
func carryStartMs() int64 { return time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).UnixMilli() }

// offsetEvent is the carry tests' event at offset off: an id of its own and
// an event time one second per offset after carryStartMs.
func offsetEvent(off int64) *events.Event {
	return carryEvent("evt_"+string(rune('a'+off%26))+string(rune('a'+off/26)), carryStartMs()+off*1000)
}

// addOffsets adds the event of every offset in [from, to) to p.
func addOffsets(p *aggregate.ChunkState, from, to int64) {
	for off := from; off < to; off++ {
		p.Add(off, offsetEvent(off))
	}
}

// newCarryCase is the start of a carry test: its config, an empty table and
// a chunk state that began chunk.
func newCarryCase(chunk int64) (aggregate.Config, *rollupfake.Table, *aggregate.ChunkState) {
	cfg := carryConfig()
	p := aggregate.NewChunkState(cfg)
	p.Begin(chunk)
	return cfg, rollupfake.New(cfg.Windows), p
}

// stored is what Sink.ReadChunk returns for chunk 1 of partition 0, with
// the progress row replaced: the fake keeps the newest one, a test may need
// the one of the last complete write.
func stored(t *testing.T, table *rollupfake.Table, progress aggregate.Progress) *aggregate.StoredChunk {
	t.Helper()
	sc, err := table.ReadChunk(context.Background(), "usage", 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	sc.Progress = progress
	return sc
}

// TestCarrySkipsWhatStoredRowsCover writes a chunk, with the last write
// reaching only the minute table (a crash between the two INSERTs), then
// continues the chunk from offset 120 as after a deleted head: every window
// must count each of the 151 events exactly once.
func TestCarrySkipsWhatStoredRowsCover(t *testing.T) {
	cfg, table, p := newCarryCase(0)
	addOffsets(p, 0, 100)
	write(t, table, p.Batch("usage", 0))
	p.Begin(1)
	addOffsets(p, 100, 130)
	write(t, table, p.Batch("usage", 0))
	addOffsets(p, 130, 150)
	b := p.Batch("usage", 0)
	progress := b.Progress
	b.Windows = b.Windows[:1] // only usage_rollup_1m was written
	write(t, table, b)

	// The head below 120 is gone; offset 150 is new. The stored progress
	// row is the one of the last complete write (LastOffset 129).
	q := aggregate.NewChunkState(cfg)
	q.Begin(1)
	progress.LastOffset, progress.Accepted = 129, 30
	q.Carry(stored(t, table, progress))
	if !q.Carrying() {
		t.Fatal("Carry did not take over the chunk")
	}
	addOffsets(q, 120, 151)
	nb := q.Batch("usage", 0)
	write(t, table, nb)
	for _, w := range cfg.Windows {
		if got := table.Sum(w.Name); got.Requests != 151 || got.InputTokens != 1510 {
			t.Fatalf("%s: %d requests, %d input tokens; want 151 and 1510", w.Name, got.Requests, got.InputTokens)
		}
	}
	if nb.Progress.Accepted != 51 || nb.Progress.LastOffset != 150 {
		t.Fatalf("progress %+v, want 51 accepted through offset 150", nb.Progress)
	}
}

// TestCarryDedupHorizon states the dedup horizon of a carried chunk: a
// repeat is dropped when its earlier occurrence is still in the log (or was
// written before), and counts again when the earlier occurrence was deleted
// before the repeat was first written.
func TestCarryDedupHorizon(t *testing.T) {
	_, table, p := newCarryCase(1)
	base := carryStartMs()
	p.Carry(&aggregate.StoredChunk{Segment: -1, Windows: make([][]aggregate.StoredRow, 2), Progress: aggregate.Progress{LastOffset: -1}})
	// The log starts at 120; evt_x at 110 was deleted before this chunk was
	// first written, evt_y at 121 is retained.
	if got := p.Add(121, carryEvent("evt_y", base)); got != aggregate.Counted {
		t.Fatalf("first evt_y: %v", got)
	}
	if got := p.Add(125, carryEvent("evt_y", base)); got != aggregate.Duplicate {
		t.Fatalf("repeat of a retained id: %v, want aggregate.Duplicate", got)
	}
	if got := p.Add(126, carryEvent("evt_x", base)); got != aggregate.Counted {
		t.Fatalf("repeat of a deleted id: %v, want aggregate.Counted (its first occurrence is gone)", got)
	}
	write(t, table, p.Batch("usage", 0))
	if got := table.Sum("1h").Requests; got != 2 {
		t.Fatalf("1h requests %d, want 2", got)
	}
}

func write(t *testing.T, table *rollupfake.Table, b *aggregate.Batch) {
	t.Helper()
	if err := table.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// TestCarryContinuesAfterASeal: a seal record ended chunk 1's first segment
// at offset 130 and its progress row (open segment 130) is stored, but no row
// of the new segment is; the log then loses records and the chunk is
// carried. The carried state must continue in the segment the seal began,
// not in the sealed one, whose rows a compactor may already have folded.
func TestCarryContinuesAfterASeal(t *testing.T) {
	cfg, table, p := newCarryCase(1)
	addOffsets(p, 100, 130)
	write(t, table, p.Batch("usage", 0))
	p.Seal(130)
	if p.Segment() != 130 || p.Groups() != 0 {
		t.Fatalf("after the seal: segment %d with %d groups, want 130 and 0", p.Segment(), p.Groups())
	}
	b := p.Batch("usage", 0)
	if b.Progress.OpenSegment != 130 || b.Progress.Seals != 1 || b.Progress.LastOffset != 130 {
		t.Fatalf("progress after the seal: %+v", b.Progress)
	}
	write(t, table, b)

	q := aggregate.NewChunkState(cfg)
	q.Begin(1)
	q.Carry(stored(t, table, b.Progress))
	if q.Segment() != 130 || q.Groups() != 0 {
		t.Fatalf("carried: segment %d with %d groups, want the sealed-off segment 130 with none", q.Segment(), q.Groups())
	}
	q.Add(140, carryEvent("evt_new", carryStartMs()+140_000))
	next := q.Batch("usage", 0)
	if next.Segment != 130 || next.Progress.Accepted != 31 || next.Progress.Seals != 1 {
		t.Fatalf("after the carry: segment %d, progress %+v; want segment 130, 31 accepted, 1 seal", next.Segment, next.Progress)
	}
	write(t, table, next)
	if c := table.Conflicts(); len(c) > 0 {
		t.Fatalf("%d rows of complete pieces changed, e.g. %s", len(c), c[0])
	}
	if m := table.Sum("1m"); m.Requests != 31 {
		t.Fatalf("1m requests %d, want 31", m.Requests)
	}
}
