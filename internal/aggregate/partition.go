// Package aggregate rolls decoded usage events up into event-time windows.
//
// State is kept per Kafka partition and per chunk: a chunk is a fixed,
// offset-aligned range of ChunkSize offsets. Everything a chunk produces (rows,
// dedup decisions, rejections) is a pure function of the records in that chunk
// and the one before it, with no wall clock involved, so any replay of the log
// reproduces exactly the same rows. See docs/design.md.
//
// The package knows neither Kafka nor ClickHouse.
package aggregate

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/zeebo/xxh3"

	"github.com/usage-rollup/usage-rollup/internal/events"
)

// Config is the window policy and the chunking of the log.
type Config struct {
	// Windows are the tumbling window sizes rolled up in one pass, each written
	// to its own table.
	Windows []Window
	// ChunkSize is the number of offsets per chunk. It fixes the dedup horizon
	// (an event id repeated within the same or the previous chunk of its
	// partition counts once) and how much a restart re-reads (at most two
	// chunks). It must never change for a topic once rows exist: the sink
	// refuses to start if it does.
	ChunkSize int64
	// MaxGroups caps the groups (summed over windows) one partition holds.
	// When a segment reaches it, the caller writes the segment and the next
	// record starts a new segment of the same chunk with empty aggregates.
	// Rows are keyed by segment, and where a segment starts is a pure
	// function of the chunk's records, so a replay cuts at the same offsets
	// and the sums do not change. Like ChunkSize it is fixed per topic.
	MaxGroups int
	// AllowedLateness is how far behind the newest event time seen an event
	// may be before it counts as late. Late events are still counted in their
	// true window; the count only feeds late_events and the metric.
	AllowedLateness time.Duration
	// MaxBatchRows makes the caller flush early once this many rows (changed groups
	// plus rejections) are pending, bounding batch size and the memory held for it.
	MaxBatchRows int
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Windows:         []Window{{Size: time.Minute, Name: "1m"}, {Size: time.Hour, Name: "1h"}},
		ChunkSize:       50_000,
		MaxGroups:       200_000,
		AllowedLateness: 10 * time.Minute,
		MaxBatchRows:    20_000,
	}
}

// Validate reports the first invalid field, naming its environment variable.
func (c Config) Validate() error {
	if len(c.Windows) == 0 {
		return fmt.Errorf("ROLLUP_WINDOWS must list at least one window size")
	}
	if c.ChunkSize < 100 {
		return fmt.Errorf("CHUNK_SIZE must be >= 100, got %d", c.ChunkSize)
	}
	if c.MaxGroups < 100 {
		return fmt.Errorf("MAX_GROUPS_PER_PARTITION must be >= 100, got %d", c.MaxGroups)
	}
	if c.AllowedLateness < 0 {
		return fmt.Errorf("ALLOWED_LATENESS must be >= 0, got %s", c.AllowedLateness)
	}
	if c.MaxBatchRows <= 0 {
		return fmt.Errorf("MAX_BATCH_ROWS must be > 0, got %d", c.MaxBatchRows)
	}
	return nil
}

// idKey is a 128-bit hash of an event id. Keeping hashes instead of strings
// keeps Add allocation-free; at 128 bits a collision among the 2*ChunkSize
// ids of a dedup horizon is far less likely than a hardware error.
type idKey = xxh3.Uint128

// Partition is the running state of one partition's current chunk. It is not
// safe for concurrent use: one goroutine owns one partition.
type Partition struct {
	cfg     Config
	chunk   int64
	segment int64              // first offset of the current segment
	cur     map[idKey]struct{} // accepted ids of the current chunk
	prev    map[idKey]struct{} // accepted ids of the previous chunk
	// curMaxMs and prevMaxMs are the newest valid event times of the current
	// and previous chunk; their max, minus the allowed lateness, is the
	// watermark. Confining it to two chunks keeps it a function of what a
	// restart re-reads, so "late" is decided the same way on replay.
	curMaxMs, prevMaxMs int64
	windows             []windowState
	keyBuf              []byte

	progress Progress
	flushed  int64 // LastOffset of the last batch handed out
	rejected []Rejection
	batch    Batch
}

type windowState struct {
	w     Window
	index map[string]int32 // group key -> position in rows
	rows  []Row
	dirty []int32 // positions changed since the last batch
	mark  []bool  // mark[i] is true when i is in dirty
}

// NewPartition returns empty state; call Begin before Add.
func NewPartition(cfg Config) *Partition {
	p := &Partition{
		cfg:   cfg,
		chunk: -1,
		cur:   make(map[idKey]struct{}),
		prev:  make(map[idKey]struct{}),
	}
	p.windows = make([]windowState, len(cfg.Windows))
	for i, w := range cfg.Windows {
		p.windows[i] = windowState{w: w, index: make(map[string]int32)}
	}
	p.batch.Windows = make([]WindowRows, len(cfg.Windows))
	return p
}

// ChunkOf returns the chunk that holds offset.
func (p *Partition) ChunkOf(offset int64) int64 { return offset / p.cfg.ChunkSize }

// ChunkStart returns the first offset of chunk.
func (p *Partition) ChunkStart(chunk int64) int64 { return chunk * p.cfg.ChunkSize }

// Chunk returns the current chunk, or -1 before the first Begin.
func (p *Partition) Chunk() int64 { return p.chunk }

// Begin drops the current chunk's aggregates and starts chunk. The ids of the
// current chunk become the dedup set of the previous chunk only if chunk
// directly follows it; otherwise the previous set is empty, exactly as a
// replay that starts at chunk-1 would see it.
func (p *Partition) Begin(chunk int64) {
	if chunk == p.chunk+1 {
		p.prev, p.cur = p.cur, p.prev
		p.prevMaxMs = p.curMaxMs
	} else {
		clear(p.prev)
		p.prevMaxMs = 0
	}
	clear(p.cur)
	p.curMaxMs = 0
	p.chunk = chunk
	first := p.ChunkStart(chunk)
	p.progress = Progress{FirstOffset: first, LastOffset: first - 1}
	p.flushed = first - 1
	p.resetSegment(first)
}

// NeedsSegment reports whether the current segment holds MaxGroups groups,
// so the caller must write it and call BeginSegment before the next record.
func (p *Partition) NeedsSegment() bool { return p.Groups() >= p.cfg.MaxGroups }

// BeginSegment drops the aggregates of the current segment (already written)
// and starts a new segment of the same chunk at offset. Dedup ids, progress
// counts and the watermark carry over: they belong to the chunk.
func (p *Partition) BeginSegment(offset int64) {
	p.resetSegment(offset)
}

func (p *Partition) resetSegment(offset int64) {
	p.segment = offset
	for i := range p.windows {
		ws := &p.windows[i]
		clear(ws.index)
		ws.rows = ws.rows[:0]
		ws.dirty = ws.dirty[:0]
		ws.mark = ws.mark[:0]
	}
	p.rejected = p.rejected[:0]
}

// Warm records the id and event time of a valid event of the current chunk
// without aggregating it. A restart uses it to rebuild the dedup set and the
// watermark of the chunk before the one it resumes, which was already written.
func (p *Partition) Warm(ev *events.Event) {
	p.cur[xxh3.Hash128(ev.ID)] = struct{}{}
	p.curMaxMs = max(p.curMaxMs, ev.TimeMs)
}

// WatermarkMs returns the current event-time watermark in Unix ms, or 0
// before any valid event was seen.
func (p *Partition) WatermarkMs() int64 {
	newest := max(p.curMaxMs, p.prevMaxMs)
	if newest == 0 {
		return 0
	}
	return newest - p.cfg.AllowedLateness.Milliseconds()
}

// Outcome says what Add did with an event.
type Outcome uint8

// Outcomes of Add.
const (
	Counted     Outcome = iota // counted in its window
	CountedLate                // counted in its (older) window, and in late_events
	Duplicate                  // dropped: its id was counted within the dedup horizon
)

// Add counts an accepted event at offset into every window, unless its id was
// already seen in this chunk or the previous one. The offset must belong to
// the current chunk, and the caller must have started a new segment if
// NeedsSegment said so.
func (p *Partition) Add(offset int64, ev *events.Event) Outcome {
	p.advance(offset)
	// Lateness is judged against the events before this one, duplicates
	// included: the warm-up of a restart cannot tell duplicates of the chunk
	// before it apart, and must reach the same watermark.
	late := ev.TimeMs < p.WatermarkMs()
	p.curMaxMs = max(p.curMaxMs, ev.TimeMs)
	p.progress.WatermarkMs = p.WatermarkMs()
	h := xxh3.Hash128(ev.ID)
	_, inCur := p.cur[h]
	_, inPrev := p.prev[h]
	// Every valid id joins the current chunk's set, duplicates included: the
	// set must equal what Warm rebuilds from this chunk's records on a
	// restart, which cannot know which of them were duplicates of the chunk
	// before. So a chain of repeats keeps dropping as long as no chunk in
	// between lacks the id.
	p.cur[h] = struct{}{}
	if inCur || inPrev {
		p.progress.Duplicates++
		return Duplicate
	}
	p.progress.Accepted++
	if late {
		p.progress.Late++
	}
	if ev.TimeMs > p.progress.MaxEventTimeMs {
		p.progress.MaxEventTimeMs = ev.TimeMs
	}

	// Key layout: 8 bytes window start, then each dimension length-prefixed.
	// The dimension part is built once and shared by all windows.
	buf := append(p.keyBuf[:0], 0, 0, 0, 0, 0, 0, 0, 0)
	for _, d := range [...][]byte{ev.WorkspaceID, ev.ProjectID, ev.APIKeyID, ev.Provider, ev.Model, ev.Endpoint} {
		buf = binary.AppendUvarint(buf, uint64(len(d)))
		buf = append(buf, d...)
	}
	p.keyBuf = buf

	var dims *Dims // materialized once, only if some window creates a group
	for i := range p.windows {
		ws := &p.windows[i]
		start := ws.w.Start(ev.TimeMs)
		binary.BigEndian.PutUint64(buf[:8], uint64(start))
		pos, ok := ws.index[string(buf)]
		if !ok {
			if dims == nil {
				dims = newDims(ev)
			}
			pos = int32(len(ws.rows))
			ws.index[string(buf)] = pos
			ws.rows = append(ws.rows, Row{WindowStart: start, Dims: *dims})
			ws.mark = append(ws.mark, false)
		}
		addTo(&ws.rows[pos].Measures, ev, late)
		if !ws.mark[pos] {
			ws.mark[pos] = true
			ws.dirty = append(ws.dirty, pos)
		}
	}
	if late {
		return CountedLate
	}
	return Counted
}

func newDims(ev *events.Event) *Dims {
	return &Dims{
		WorkspaceID: string(ev.WorkspaceID),
		ProjectID:   string(ev.ProjectID),
		APIKeyID:    string(ev.APIKeyID),
		Provider:    string(ev.Provider),
		Model:       string(ev.Model),
		Endpoint:    string(ev.Endpoint),
	}
}

func addTo(m *Measures, ev *events.Event, late bool) {
	m.Requests++
	if ev.IsError() {
		m.Errors++
	}
	u := &ev.Usage
	m.InputTokens += u.InputTokens
	m.InputTextTokens += u.InputTextTokens
	m.InputImageTokens += u.InputImageTokens
	m.InputCachedTokens += u.InputCachedTokens
	m.OutputTokens += u.OutputTokens
	m.TotalTokens += u.TotalTokens
	m.LatencyMsSum += ev.LatencyMs
	m.LatencyMsMax = max(m.LatencyMsMax, ev.LatencyMs)
	if ev.Inconsistent {
		m.InconsistentEvents++
	}
	if late {
		m.LateEvents++
	}
}

// Reject records a rejected message at offset. Rejections are per offset and
// never deduplicated: every rejected message gets exactly one row.
func (p *Partition) Reject(offset int64, rej *events.RejectError, recordTime time.Time, value []byte) {
	p.advance(offset)
	p.progress.Rejected++
	n := min(len(value), MaxRejectedPayload)
	r := Rejection{
		Offset:     offset,
		Reason:     string(rej.Reason),
		Field:      rej.Field,
		Detail:     rej.Detail,
		RecordTime: recordTime,
		Size:       len(value),
		Payload:    append([]byte(nil), value[:n]...),
	}
	p.rejected = append(p.rejected, r)
}

func (p *Partition) advance(offset int64) {
	if p.ChunkOf(offset) != p.chunk {
		// A caller bug, not bad input: the consumer loop must Begin a chunk
		// before feeding its offsets, or rows would mix two chunks.
		panic(fmt.Sprintf("aggregate: offset %d is outside chunk %d", offset, p.chunk))
	}
	p.progress.LastOffset = offset
}

// Pending reports whether offsets were consumed since the last batch.
func (p *Partition) Pending() bool { return p.progress.LastOffset > p.flushed }

// BatchSize returns how many rows the next batch would hold: groups changed
// since the last batch, summed over windows, plus pending rejections.
func (p *Partition) BatchSize() int {
	n := len(p.rejected)
	for i := range p.windows {
		n += len(p.windows[i].dirty)
	}
	return n
}

// Groups returns the number of groups held for the current chunk, summed over windows.
func (p *Partition) Groups() int {
	n := 0
	for i := range p.windows {
		n += len(p.windows[i].rows)
	}
	return n
}

// Approximate sizes behind MemoryBytes: a group is its map key, its Row
// (six dimension strings, usually shared with the key's bytes only in
// length) and index/dirty bookkeeping; an id is a 16-byte hash in a map.
const (
	groupBytes = 400
	idBytes    = 48
)

// MemoryBytes estimates the heap held by the partition's state, for the
// state-size metric. It is an estimate, not an accounting.
func (p *Partition) MemoryBytes() int64 {
	return int64(p.Groups())*groupBytes + int64(len(p.cur)+len(p.prev))*idBytes
}

// Progress returns the counts of the current chunk prefix.
func (p *Partition) Progress() Progress { return p.progress }

// Batch returns the rows changed since the last batch, the rejections since
// then and the chunk progress, and marks them handed out. The batch and its
// slices are owned by the Partition and valid until the next call that
// changes it; the caller writes it (retrying as long as needed) before
// feeding more events.
func (p *Partition) Batch(topic string, partition int32) *Batch {
	b := &p.batch
	b.Topic, b.Partition, b.Chunk, b.Segment = topic, partition, p.chunk, p.segment
	for i := range p.windows {
		ws := &p.windows[i]
		rows := b.Windows[i].Rows[:0]
		for _, pos := range ws.dirty {
			rows = append(rows, ws.rows[pos])
			ws.mark[pos] = false
		}
		ws.dirty = ws.dirty[:0]
		b.Windows[i] = WindowRows{Window: ws.w, Rows: rows}
	}
	b.Rejected = append(b.Rejected[:0], p.rejected...)
	p.rejected = p.rejected[:0]
	b.Progress = p.progress
	p.flushed = p.progress.LastOffset
	return b
}
