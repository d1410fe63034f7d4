package aggregate

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/events"
	"github.com/usage-rollup/usage-rollup/internal/loadgen"
)

// payloads generates n realistic messages (both spellings, chat usage,
// duplicates, late and malformed ones) once per benchmark.
func payloads(b *testing.B, n int) [][]byte {
	b.Helper()
	cfg := loadgen.DefaultConfig()
	cfg.Count, cfg.Start = n, time.Now().Add(-2*time.Hour)
	var out [][]byte
	if _, err := loadgen.Generate(cfg, func(_, v []byte) error {
		out = append(out, append([]byte(nil), v...))
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkDecodeAndAggregate is the per-event hot path of a partition
// goroutine: decode, dedup, count into both default windows, and hand out a
// batch every 4096 events, with chunks rotating as in production.
//
// The messages are replayed in passes. Each pass rewrites the start of every
// event id (in place, same length, outside the timer), so that a pass is new
// events, as in a real stream, with loadgen's own duplicates (a copy of an
// earlier message) still duplicates. Without it every event after the first
// pass would be a duplicate within the dedup horizon, and the benchmark
// would time the duplicate path, which skips the windows.
func BenchmarkDecodeAndAggregate(b *testing.B) {
	msgs := payloads(b, 20_000)
	ids := idPositions(msgs)
	recordTime := time.Now()
	dec := events.NewDecoder(events.DefaultConfig())
	p := NewChunkState(DefaultConfig())
	p.Begin(0)
	var ev events.Event
	var size int64 // bytes decoded
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i > 0 && i%len(msgs) == 0 {
			b.StopTimer()
			renumber(msgs, ids, i/len(msgs))
			b.StartTimer()
		}
		off := int64(i)
		if c := p.ChunkOf(off); c != p.Chunk() {
			p.Batch("t", 0)
			p.Begin(c)
		}
		v := msgs[i%len(msgs)]
		size += int64(len(v))
		if err := dec.Decode(v, recordTime, &ev); err != nil {
			re, _ := events.AsReject(err)
			p.Reject(off, re, recordTime, v)
		} else {
			p.Add(off, &ev)
		}
		if i%4096 == 4095 {
			p.Batch("t", 0)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	// allocs/op rounds down to an integer; the rare allocations (a new
	// group's dimension strings, a rejection's copy of its payload) show
	// here. The count includes renumber's share, which is none.
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N), "allocs/event")
	b.SetBytes(size / int64(max(b.N, 1)))
}

// idPrefix precedes the part of a loadgen event id that renumber rewrites.
const idPrefix = `"id":"evt_`

// idPositions returns, per message, the index of the first id byte after
// idPrefix, or -1 if the message has no such id (some malformed ones).
func idPositions(msgs [][]byte) []int {
	pos := make([]int, len(msgs))
	for i, m := range msgs {
		pos[i] = -1
		if j := bytes.Index(m, []byte(idPrefix)); j >= 0 && len(m) >= j+len(idPrefix)+2 {
			pos[i] = j + len(idPrefix)
		}
	}
	return pos
}

// renumber writes pass, in two base-32 digits, over the first two id bytes of
// every message, so each pass (up to 1024) has its own ids.
func renumber(msgs [][]byte, pos []int, pass int) {
	const digits = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	for i, j := range pos {
		if j >= 0 {
			msgs[i][j], msgs[i][j+1] = digits[pass>>5&31], digits[pass&31]
		}
	}
}

// BenchmarkStateMemory measures the heap one partition holds at its group
// cap: every event opens a new group (one api key per event), the worst case
// for memory. It reports heap bytes per group held and the total at the cap.
func BenchmarkStateMemory(b *testing.B) {
	cfg := DefaultConfig()
	cfg.MaxGroups = 100_000
	base := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).UnixMilli()
	ev := events.Event{WorkspaceID: []byte("ws_acme"), ProjectID: []byte("proj_web"), Provider: []byte("openai"),
		Model: []byte("gpt-image-1"), Endpoint: []byte("images.generations"), TimeMs: base,
		Usage: events.Usage{InputTokens: 50, OutputTokens: 4160, TotalTokens: 4210}}
	var peak uint64
	for range b.N {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		p := NewChunkState(cfg)
		p.Begin(0)
		// cfg.MaxGroups/2 events fill the cap: each adds a group in both windows.
		for i := range cfg.MaxGroups / 2 {
			ev.ID = fmt.Appendf(ev.ID[:0], "evt_%d", i)
			ev.APIKeyID = fmt.Appendf(ev.APIKeyID[:0], "key_%d", i)
			p.Add(int64(i), &ev)
		}
		if !p.NeedsSegment(int64(cfg.MaxGroups / 2)) {
			b.Fatal("the cap was not reached")
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		peak = max(peak, after.HeapAlloc-before.HeapAlloc)
		runtime.KeepAlive(p)
	}
	b.ReportMetric(float64(peak)/float64(cfg.MaxGroups), "heap-B/group")
	b.ReportMetric(float64(peak)/(1<<20), "heap-MiB@cap")
}
