package aggregate

import (
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
func BenchmarkDecodeAndAggregate(b *testing.B) {
	msgs := payloads(b, 20_000)
	recordTime := time.Now()
	dec := events.NewDecoder(events.DefaultConfig())
	p := NewChunkState(DefaultConfig())
	p.Begin(0)
	var ev events.Event
	var bytes int64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		off := int64(i)
		if c := p.ChunkOf(off); c != p.Chunk() {
			p.Batch("t", 0)
			p.Begin(c)
		}
		v := msgs[i%len(msgs)]
		bytes += int64(len(v))
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
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.SetBytes(bytes / int64(max(b.N, 1)))
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
