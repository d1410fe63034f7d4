package aggregate

import "time"

// Dims are the grouping dimensions of a rollup row.
type Dims struct {
	WorkspaceID string
	ProjectID   string
	APIKeyID    string
	Provider    string
	Model       string
	Endpoint    string
}

// Measures are the additive measures of a rollup row, plus LatencyMsMax which
// combines with max(). All values are exact integer sums of what producers sent.
type Measures struct {
	Requests          uint64
	Errors            uint64 // status_code >= 400
	InputTokens       uint64
	InputTextTokens   uint64
	InputImageTokens  uint64
	InputCachedTokens uint64
	OutputTokens      uint64
	TotalTokens       uint64
	LatencyMsSum      uint64
	LatencyMsMax      uint64
	// InconsistentEvents counts events whose usage parts did not add up; their
	// numbers are included above exactly as reported.
	InconsistentEvents uint64
	// LateEvents counts events older than the partition's watermark when they
	// were read (see Config.AllowedLateness). They are included above, in
	// their true window.
	LateEvents uint64
}

// Merge adds o into m: sums for every measure, max for LatencyMsMax. It is
// how rows of different chunks combine into one group's totals.
func (m *Measures) Merge(o *Measures) {
	m.Requests += o.Requests
	m.Errors += o.Errors
	m.InputTokens += o.InputTokens
	m.InputTextTokens += o.InputTextTokens
	m.InputImageTokens += o.InputImageTokens
	m.InputCachedTokens += o.InputCachedTokens
	m.OutputTokens += o.OutputTokens
	m.TotalTokens += o.TotalTokens
	m.LatencyMsSum += o.LatencyMsSum
	m.LatencyMsMax = max(m.LatencyMsMax, o.LatencyMsMax)
	m.InconsistentEvents += o.InconsistentEvents
	m.LateEvents += o.LateEvents
}

// Row is the running aggregate of one (window, dims) group over a chunk prefix.
type Row struct {
	WindowStart int64 // Unix seconds, UTC, aligned to the window size
	Dims        Dims
	Measures    Measures
}

// WindowRows are the rows of one window size that changed since the last batch.
type WindowRows struct {
	Window Window
	Rows   []Row
}

// Rejection records one rejected message. Exactly one exists per rejected offset.
type Rejection struct {
	Offset     int64
	Reason     string
	Field      string
	Detail     string
	RecordTime time.Time // Kafka record timestamp
	Size       int       // full message size in bytes
	Payload    []byte    // the first MaxRejectedPayload bytes of the message
}

// MaxRejectedPayload bounds how much of a rejected message is kept in ClickHouse:
// enough to diagnose a producer bug, small enough that a burst of 5 MB poison
// messages cannot bloat the table. The dead-letter path keeps the full bytes.
const MaxRejectedPayload = 4096

// Progress describes how far a chunk has been consumed; it is written with every
// batch so that accepted + rejected + duplicates + seals can be reconciled per
// offset range.
type Progress struct {
	FirstOffset int64 // first offset of the chunk (chunk * chunk size)
	LastOffset  int64 // last offset covered by this batch; also the row version
	Accepted    uint64
	Rejected    uint64
	Duplicates  uint64
	Late        uint64
	// Seals counts the seal records of the chunk prefix (ChunkState.Seal).
	Seals uint64
	// OpenSegment is the first offset of the segment the next record of the
	// chunk joins: every segment of the chunk that starts below it is
	// complete, and its rows never change again. 0 in rows written before
	// seals existed (migration 0015), which says nothing.
	OpenSegment int64
	// WatermarkMs is the partition's event-time watermark after LastOffset:
	// the newest valid event time seen in this chunk and the previous one,
	// minus the allowed lateness. Unix ms; 0 before any event.
	WatermarkMs int64
	// MaxEventTimeMs is the largest accepted event time in the chunk prefix (Unix ms), 0 if none.
	MaxEventTimeMs int64
}

// Batch is everything one flush of one partition's chunk writes. Every row is
// the aggregate over offsets [Progress.FirstOffset, Progress.LastOffset] of its
// group, a pure function of the log, so writing a batch twice or writing a
// shorter prefix after a longer one cannot change what ReplacingMergeTree keeps.
type Batch struct {
	Topic     string
	Partition int32
	Chunk     int64
	// Segment is the first offset of the segment the rows belong to (see
	// Config.MaxGroups); it is part of every row's key.
	Segment  int64
	Windows  []WindowRows
	Rejected []Rejection
	Progress Progress
}

// Len returns the rows the batch writes: rollup rows of every window and
// rejections.
func (b *Batch) Len() int {
	n := len(b.Rejected)
	for i := range b.Windows {
		n += len(b.Windows[i].Rows)
	}
	return n
}

// Version is the ReplacingMergeTree version of every row in the batch.
func (b *Batch) Version() uint64 { return uint64(b.Progress.LastOffset) }

// Finality says up to which event time one partition's windows are complete:
// every window ending at or before ClosedThroughMs has all its events written.
type Finality struct {
	Topic           string
	Partition       int32
	ClosedThroughMs int64 // Unix ms
	MaxEventTimeMs  int64 // newest event time written, Unix ms
	CommittedOffset int64 // the offset committed with the write it follows
	Idle            bool  // advanced by idleness (caught up, no records), not by events
}

// StoredChunk is what ClickHouse already holds of one chunk of a partition:
// the rows of its newest segment, each with the last offset it covers, and
// its progress row. A chunk the log can no longer reproduce in full (its head
// or part of its dedup horizon was deleted or compacted away) is continued
// from it instead of being recomputed: see ChunkState.Carry.
type StoredChunk struct {
	// Segment is the first offset of the newest segment of the chunk that
	// has rows in any window table; -1 when no rollup row exists.
	Segment int64
	// Windows holds, per configured window (Config.Windows order), the
	// stored rows of Segment as FINAL shows them.
	Windows [][]StoredRow
	// Progress is the chunk's usage_chunks row; Progress.LastOffset is -1
	// when there is none.
	Progress Progress
}

// StoredRow is one stored rollup row and the last offset it covers (its
// ReplacingMergeTree version).
type StoredRow struct {
	Row
	Version int64
}
