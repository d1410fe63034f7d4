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
	// MaxBatchRows makes the caller flush early once this many rows (changed groups
	// plus rejections) are pending, bounding batch size and the memory held for it.
	MaxBatchRows int
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Windows:      []Window{{Size: time.Minute, Name: "1m"}, {Size: time.Hour, Name: "1h"}},
		ChunkSize:    50_000,
		MaxBatchRows: 20_000,
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
	cur     map[idKey]struct{} // accepted ids of the current chunk
	prev    map[idKey]struct{} // accepted ids of the previous chunk
	windows []windowState
	keyBuf  []byte

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
	} else {
		clear(p.prev)
	}
	clear(p.cur)
	for i := range p.windows {
		ws := &p.windows[i]
		clear(ws.index)
		ws.rows = ws.rows[:0]
		ws.dirty = ws.dirty[:0]
		ws.mark = ws.mark[:0]
	}
	p.rejected = p.rejected[:0]
	p.chunk = chunk
	first := p.ChunkStart(chunk)
	p.progress = Progress{FirstOffset: first, LastOffset: first - 1}
	p.flushed = first - 1
}

// Warm records the id of an accepted event of the current chunk without
// aggregating it. A restart uses it to rebuild the dedup set of the chunk
// before the one it resumes, which was already written.
func (p *Partition) Warm(id []byte) {
	p.cur[xxh3.Hash128(id)] = struct{}{}
}

// Add counts an accepted event at offset into every window, unless its id was
// already seen in this chunk or the previous one. It reports whether the event
// was a duplicate. The offset must belong to the current chunk.
func (p *Partition) Add(offset int64, ev *events.Event) (duplicate bool) {
	p.advance(offset)
	h := xxh3.Hash128(ev.ID)
	_, inCur := p.cur[h]
	_, inPrev := p.prev[h]
	if inCur || inPrev {
		p.progress.Duplicates++
		return true
	}
	p.cur[h] = struct{}{}
	p.progress.Accepted++
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
		addTo(&ws.rows[pos].Measures, ev)
		if !ws.mark[pos] {
			ws.mark[pos] = true
			ws.dirty = append(ws.dirty, pos)
		}
	}
	return false
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

func addTo(m *Measures, ev *events.Event) {
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

// Progress returns the counts of the current chunk prefix.
func (p *Partition) Progress() Progress { return p.progress }

// Batch returns the rows changed since the last batch, the rejections since
// then and the chunk progress, and marks them handed out. The batch and its
// slices are owned by the Partition and valid until the next call that
// changes it; the caller writes it (retrying as long as needed) before
// feeding more events.
func (p *Partition) Batch(topic string, partition int32) *Batch {
	b := &p.batch
	b.Topic, b.Partition, b.Chunk = topic, partition, p.chunk
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
