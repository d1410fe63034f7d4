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
	"strings"
	"time"

	"github.com/zeebo/xxh3"

	"github.com/usage-rollup/usage-rollup/internal/events"

	"github.com/usage-rollup/usage-rollup/internal/fielderr"
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

// Validate reports the first invalid field as a *fielderr.Error.
func (c Config) Validate() error {
	if len(c.Windows) == 0 {
		return fielderr.New("Windows", "must list at least one window size")
	}
	if c.ChunkSize < 100 {
		return fielderr.New("ChunkSize", "must be >= 100, got %d", c.ChunkSize)
	}
	if c.MaxGroups < 100 {
		return fielderr.New("MaxGroups", "must be >= 100, got %d", c.MaxGroups)
	}
	if c.AllowedLateness < 0 {
		return fielderr.New("AllowedLateness", "must be >= 0, got %s", c.AllowedLateness)
	}
	if c.MaxBatchRows <= 0 {
		return fielderr.New("MaxBatchRows", "must be > 0, got %d", c.MaxBatchRows)
	}
	return nil
}

// idKey is a 128-bit hash of an event id. Keeping hashes instead of strings
// keeps Add allocation-free; at 128 bits a collision among the 2*ChunkSize
// ids of a dedup horizon is far less likely than a hardware error.
type idKey = xxh3.Uint128

// ChunkState is the running state of one partition's current chunk (and the
// dedup ids and event times of the chunk before it). It is not
// safe for concurrent use: one goroutine owns one partition.
type ChunkState struct {
	cfg     Config
	chunk   int64
	segment int64              // first offset of the current segment
	cur     map[idKey]struct{} // accepted ids of the current chunk
	prev    map[idKey]struct{} // accepted ids of the previous chunk
	// curIDs and prevIDs filter cur and prev: Add looks an id up in prev only
	// if prevIDs may hold it.
	curIDs, prevIDs idFilter
	// curMaxMs and prevMaxMs are the newest valid event times of the current
	// and previous chunk; their max, minus the allowed lateness, is the
	// watermark. Confining it to two chunks keeps it a function of what a
	// restart re-reads, so "late" is decided the same way on replay.
	curMaxMs, prevMaxMs int64
	windows             []windowState
	keyBuf              []byte

	progress Progress
	// progressCover is the last offset the stored progress row that Carry
	// took over already counts; -1 when the chunk is computed from the log.
	progressCover int64
	carrying      bool // the current chunk continues from stored rows (Carry)
	// storedThrough is the highest version among the stored rows Carry took
	// over; -1 otherwise.
	storedThrough int64
	flushed       int64 // LastOffset of the last batch handed out
	rejected      []Rejection
	batch         Batch
}

type windowState struct {
	w     Window
	index map[string]int32 // group key -> position in rows
	rows  []Row
	// cover[i] is the last offset rows[i] already includes: the version of
	// the stored row Carry took it over from, or -1 for a group computed
	// from the log. Add skips offsets at or below it.
	cover []int64
	dirty []int32 // positions changed since the last batch
	mark  []bool  // mark[i] is true when i is in dirty
}

// NewChunkState returns empty state; call Begin before Add.
func NewChunkState(cfg Config) *ChunkState {
	p := &ChunkState{
		cfg:   cfg,
		chunk: -1,
		cur:   make(map[idKey]struct{}),
		prev:  make(map[idKey]struct{}),
		// Sized by ChunkSize, the most ids a chunk adds.
		curIDs:  newIDFilter(cfg.ChunkSize),
		prevIDs: newIDFilter(cfg.ChunkSize),
	}
	p.windows = make([]windowState, len(cfg.Windows))
	for i, w := range cfg.Windows {
		p.windows[i] = windowState{w: w, index: make(map[string]int32)}
	}
	p.batch.Windows = make([]WindowRows, len(cfg.Windows))
	return p
}

// ChunkOf returns the chunk that holds offset.
func (p *ChunkState) ChunkOf(offset int64) int64 { return offset / p.cfg.ChunkSize }

// ChunkStart returns the first offset of chunk.
func (p *ChunkState) ChunkStart(chunk int64) int64 { return chunk * p.cfg.ChunkSize }

// Chunk returns the current chunk, or -1 before the first Begin.
func (p *ChunkState) Chunk() int64 { return p.chunk }

// Begin drops the current chunk's aggregates and starts chunk. The ids of the
// current chunk become the dedup set of the previous chunk only if chunk
// directly follows it; otherwise the previous set is empty, exactly as a
// replay that starts at chunk-1 would see it.
func (p *ChunkState) Begin(chunk int64) {
	if chunk == p.chunk+1 {
		p.prev, p.cur = p.cur, p.prev
		p.prevIDs, p.curIDs = p.curIDs, p.prevIDs
		p.prevMaxMs = p.curMaxMs
	} else {
		clear(p.prev)
		clear(p.prevIDs)
		p.prevMaxMs = 0
	}
	clear(p.cur)
	clear(p.curIDs)
	p.curMaxMs = 0
	p.chunk = chunk
	first := p.ChunkStart(chunk)
	p.progress = Progress{FirstOffset: first, LastOffset: first - 1}
	p.progressCover, p.carrying, p.storedThrough = -1, false, -1
	p.flushed = first - 1
	p.resetSegment(first)
}

// Carry continues the current chunk from what ClickHouse already holds of it
// instead of recomputing it from the log. The caller uses it when the log no
// longer holds every offset from the start of the previous chunk up to the
// next record (retention or DeleteRecords removed the head, compaction
// removed records): recomputing would write a shorter aggregate under the
// same key, and ReplacingMergeTree would keep it.
//
// The newest stored segment becomes the current segment, its rows become the
// groups, each remembering the last offset it covers; Add then skips, per
// window, every offset a group's stored row already includes, and offsets of
// earlier (complete) segments altogether. Progress counts continue from the
// stored progress row. So events once written stay counted exactly once,
// whatever later disappears from the log. Dedup and lateness of the events
// not yet written are decided from the records the log still holds.
//
// Call it after Begin, or mid-chunk after the pending state was written (the
// stored rows then include it). s is not kept.
func (p *ChunkState) Carry(s *StoredChunk) {
	// The segment to continue is the newest one begun, by this partition
	// or by whoever wrote the stored rows; a segment begun after the newest
	// stored rows (a seal or a cut) has no rows yet, and the stored ones are
	// complete.
	seg := max(p.segment, s.Segment, s.Progress.OpenSegment, p.ChunkStart(p.chunk))
	p.resetSegment(seg)
	stored := s.Windows
	if s.Segment != seg {
		stored = nil // the stored rows belong to a complete segment
	}
	for i := range min(len(p.windows), len(stored)) {
		ws := &p.windows[i]
		for j := range stored[i] {
			sr := &stored[i][j]
			key := p.groupKey(sr.WindowStart, &sr.Dims)
			if _, ok := ws.index[string(key)]; ok {
				continue // FINAL shows one row per key; be safe against repeats
			}
			ws.index[string(key)] = int32(len(ws.rows))
			ws.rows = append(ws.rows, sr.Row)
			ws.cover = append(ws.cover, sr.Version)
			p.storedThrough = max(p.storedThrough, sr.Version)
			ws.mark = append(ws.mark, false)
		}
	}
	// Progress counts continue from whichever covers more: the stored row
	// or, mid-chunk, this partition's own counts (which it just wrote).
	if sp := s.Progress; sp.LastOffset >= p.progress.LastOffset && sp.LastOffset >= p.ChunkStart(p.chunk) {
		p.progress.Accepted, p.progress.Rejected = sp.Accepted, sp.Rejected
		p.progress.Duplicates, p.progress.Late, p.progress.Seals = sp.Duplicates, sp.Late, sp.Seals
		p.progress.MaxEventTimeMs = max(p.progress.MaxEventTimeMs, sp.MaxEventTimeMs)
		p.progressCover = sp.LastOffset
	} else {
		p.progressCover = p.progress.LastOffset
	}
	// The stored events' times bound the watermark, as they did when they
	// were read.
	p.curMaxMs = max(p.curMaxMs, p.progress.MaxEventTimeMs)
	p.carrying = true
}

// Carrying reports whether the current chunk continues from stored rows.
func (p *ChunkState) Carrying() bool { return p.carrying }

// groupKey builds the map key of a group: 8 bytes window start, then each
// dimension length-prefixed. It reuses keyBuf.
func (p *ChunkState) groupKey(windowStart int64, d *Dims) []byte {
	buf := append(p.keyBuf[:0], 0, 0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint64(buf[:8], uint64(windowStart))
	for _, v := range [...]string{d.WorkspaceID, d.ProjectID, d.APIKeyID, d.Provider, d.Model, d.Endpoint} {
		buf = binary.AppendUvarint(buf, uint64(len(v)))
		buf = append(buf, v...)
	}
	p.keyBuf = buf
	return buf
}

// NeedsSegment reports whether the current segment holds MaxGroups groups,
// so the caller must write it and call BeginSegment(offset) before feeding
// the record at offset. After Carry, no cut happens at or below the last
// offset the stored segment covers: a new segment there would overlap it.
func (p *ChunkState) NeedsSegment(offset int64) bool {
	return offset > p.storedThrough && p.Groups() >= p.cfg.MaxGroups
}

// BeginSegment drops the aggregates of the current segment (already written)
// and starts a new segment of the same chunk at offset. Dedup ids, progress
// counts and the watermark carry over: they belong to the chunk.
func (p *ChunkState) BeginSegment(offset int64) {
	p.resetSegment(offset)
}

// Seal takes the seal record at offset (written into the log by a consumer
// whose partition went idle): it ends the current segment there, so that
// every piece of the chunk below offset is complete and a compactor may fold
// it, and counts the record. Being a record of the log, a seal cuts at the
// same offset in every replay, as a group-cap cut does. The caller writes
// the pending state first. A seal that lands at or below the start of the
// current segment, or inside what a carried segment already covers (written
// by a consumer that did not cut there), cuts nothing.
func (p *ChunkState) Seal(offset int64) {
	p.advance(offset)
	if offset > p.progressCover {
		p.progress.Seals++
	}
	if offset > p.segment && offset > p.storedThrough {
		p.resetSegment(offset)
	}
}

// Segment returns the first offset of the current segment.
func (p *ChunkState) Segment() int64 { return p.segment }

func (p *ChunkState) resetSegment(offset int64) {
	p.segment = offset
	p.progress.OpenSegment = offset
	for i := range p.windows {
		ws := &p.windows[i]
		clear(ws.index)
		clear(ws.rows) // drop dimension strings so they can be collected
		ws.rows = ws.rows[:0]
		ws.cover = ws.cover[:0]
		ws.dirty = ws.dirty[:0]
		ws.mark = ws.mark[:0]
	}
	p.rejected = p.rejected[:0]
}

// Warm records the id and event time of a valid event of the current chunk
// without aggregating it. A restart uses it to rebuild the dedup set and the
// watermark of the chunk before the one it resumes, which was already written.
func (p *ChunkState) Warm(ev *events.Event) {
	h := xxh3.Hash128(ev.ID)
	p.cur[h] = struct{}{}
	p.curIDs.add(h)
	p.curMaxMs = max(p.curMaxMs, ev.TimeMs)
}

// WatermarkMs returns the current event-time watermark in Unix ms, or 0
// before any valid event was seen.
func (p *ChunkState) WatermarkMs() int64 {
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
func (p *ChunkState) Add(offset int64, ev *events.Event) Outcome {
	p.advance(offset)
	// Lateness is judged against the events before this one, duplicates
	// included: the warm-up of a restart cannot tell duplicates of the chunk
	// before it apart, and must reach the same watermark.
	late := ev.TimeMs < p.WatermarkMs()
	p.curMaxMs = max(p.curMaxMs, ev.TimeMs)
	p.progress.WatermarkMs = p.WatermarkMs()
	h := xxh3.Hash128(ev.ID)
	_, inCur := p.cur[h]
	inPrev := false
	if p.prevIDs.has(h) { // nearly always false for a new id: skips a cache miss
		_, inPrev = p.prev[h]
	}
	// Every valid id joins the current chunk's set, duplicates included: the
	// set must equal what Warm rebuilds from this chunk's records on a
	// restart, which cannot know which of them were duplicates of the chunk
	// before. So a chain of repeats keeps dropping as long as no chunk in
	// between lacks the id.
	p.cur[h] = struct{}{}
	p.curIDs.add(h)
	// Offsets the stored progress row already counts (Carry) are not
	// counted again; everywhere else progressCover is -1.
	count := offset > p.progressCover
	if inCur || inPrev {
		if count {
			p.progress.Duplicates++
		}
		return Duplicate
	}
	if count {
		p.progress.Accepted++
		if late {
			p.progress.Late++
		}
		p.progress.MaxEventTimeMs = max(p.progress.MaxEventTimeMs, ev.TimeMs)
	}
	if offset < p.segment {
		// Only after Carry: the offset belongs to an earlier segment of the
		// chunk, complete and stored before the current one began.
		return outcome(late)
	}

	// Key layout: 8 bytes window start, then each dimension length-prefixed.
	// The dimension part is built once and shared by all windows.
	buf := append(p.keyBuf[:0], 0, 0, 0, 0, 0, 0, 0, 0)
	for _, d := range [...][]byte{ev.WorkspaceID, ev.ProjectID, ev.APIKeyID, ev.Provider, ev.Model, ev.Endpoint} {
		buf = binary.AppendUvarint(buf, uint64(len(d)))
		buf = append(buf, d...)
	}
	p.keyBuf = buf

	var dims Dims // materialized once, only if some window creates a group
	haveDims := false
	for i := range p.windows {
		ws := &p.windows[i]
		start := ws.w.Start(ev.TimeMs)
		binary.BigEndian.PutUint64(buf[:8], uint64(start))
		pos, ok := ws.index[string(buf)]
		if !ok {
			if !haveDims {
				dims, haveDims = newDims(ev), true
			}
			pos = int32(len(ws.rows))
			ws.index[string(buf)] = pos
			ws.rows = append(ws.rows, Row{WindowStart: start, Dims: dims})
			ws.cover = append(ws.cover, -1)
			ws.mark = append(ws.mark, false)
		} else if offset <= ws.cover[pos] {
			continue // the stored row Carry took over already includes it
		}
		addTo(&ws.rows[pos].Measures, ev, late)
		if !ws.mark[pos] {
			ws.mark[pos] = true
			ws.dirty = append(ws.dirty, pos)
		}
	}
	return outcome(late)
}

func outcome(late bool) Outcome {
	if late {
		return CountedLate
	}
	return Counted
}

// newDims copies the event's dimensions, which alias the decoder's buffer,
// into one string and slices the six out of it: one allocation per new group
// instead of six. The six live and die together, with the group.
func newDims(ev *events.Event) Dims {
	parts := [...][]byte{ev.WorkspaceID, ev.ProjectID, ev.APIKeyID, ev.Provider, ev.Model, ev.Endpoint}
	n := 0
	for _, d := range parts {
		n += len(d)
	}
	var sb strings.Builder
	sb.Grow(n)
	for _, d := range parts {
		sb.Write(d)
	}
	all := sb.String()
	var dims [len(parts)]string
	for i, d := range parts {
		dims[i], all = all[:len(d)], all[len(d):]
	}
	return Dims{WorkspaceID: dims[0], ProjectID: dims[1], APIKeyID: dims[2], Provider: dims[3], Model: dims[4], Endpoint: dims[5]}
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
func (p *ChunkState) Reject(offset int64, rej *events.RejectError, recordTime time.Time, value []byte) {
	p.advance(offset)
	if offset > p.progressCover {
		p.progress.Rejected++
	}
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

func (p *ChunkState) advance(offset int64) {
	if p.ChunkOf(offset) != p.chunk {
		// A caller bug, not bad input: the consumer loop must Begin a chunk
		// before feeding its offsets, or rows would mix two chunks.
		panic(fmt.Sprintf("aggregate: offset %d is outside chunk %d", offset, p.chunk))
	}
	p.progress.LastOffset = offset
}

// Pending reports whether offsets were consumed since the last batch.
func (p *ChunkState) Pending() bool { return p.progress.LastOffset > p.flushed }

// BatchSize returns how many rows the next batch would hold: groups changed
// since the last batch, summed over windows, plus pending rejections.
func (p *ChunkState) BatchSize() int {
	n := len(p.rejected)
	for i := range p.windows {
		n += len(p.windows[i].dirty)
	}
	return n
}

// Groups returns the number of groups held for the current chunk, summed over windows.
func (p *ChunkState) Groups() int {
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
func (p *ChunkState) MemoryBytes() int64 {
	return int64(p.Groups())*groupBytes + int64(len(p.cur)+len(p.prev))*idBytes +
		int64(len(p.curIDs)+len(p.prevIDs))*8
}

// idFilter is a Bloom filter with one hash function over the ids of one
// chunk: has never misses an id that was added, and wrongly reports about
// one in 16 of the others (16 bits per id at ChunkSize ids). A new id, nearly
// every event, is in neither dedup map, and each map lookup for it misses the
// CPU cache (a map of ChunkSize ids is megabytes); checking the previous
// chunk's filter first saves one of the two lookups, which were most of Add.
type idFilter []uint64

func newIDFilter(chunkSize int64) idFilter {
	bits := uint64(1024)
	for bits < 16*uint64(max(chunkSize, 0)) {
		bits <<= 1
	}
	return make(idFilter, bits/64)
}

// bit returns the word and mask of h's bit: xxh3 output is uniform, so its
// low bits serve as the hash.
func (f idFilter) bit(h idKey) (int, uint64) {
	i := h.Lo & (uint64(len(f))*64 - 1)
	return int(i >> 6), 1 << (i & 63)
}

func (f idFilter) add(h idKey) {
	w, m := f.bit(h)
	f[w] |= m
}

func (f idFilter) has(h idKey) bool {
	w, m := f.bit(h)
	return f[w]&m != 0
}

// Progress returns the counts of the current chunk prefix.
func (p *ChunkState) Progress() Progress { return p.progress }

// Batch returns the rows changed since the last batch, the rejections since
// then and the chunk progress, and marks them handed out. The batch and its
// slices are owned by the ChunkState and valid until the next call that
// changes it; the caller writes it (retrying as long as needed) before
// feeding more events.
func (p *ChunkState) Batch(topic string, partition int32) *Batch {
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
