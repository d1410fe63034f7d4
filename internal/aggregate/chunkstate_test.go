package aggregate

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/events"
)

func testConfig(chunk int64) Config {
	return Config{
		Windows:         []Window{{Size: time.Minute, Name: "1m"}, {Size: time.Hour, Name: "1h"}},
		ChunkSize:       chunk,
		MaxGroups:       1 << 30,
		AllowedLateness: 10 * time.Minute,
		MaxBatchRows:    1000,
	}
}

func TestDedupHorizon(t *testing.T) {
	const chunk = 100
	ev := func(id string) *events.Event {
		return &events.Event{ID: []byte(id), TimeMs: 60_000, WorkspaceID: []byte("w"), Model: []byte("m"), Endpoint: []byte("e")}
	}
	cases := []struct {
		name      string
		first     int64
		repeat    int64
		duplicate bool
	}{
		{"same chunk", 10, 90, true},
		{"next chunk", 10, 199, true},
		{"two chunks later", 10, 200, false},
		{"across the boundary", 99, 100, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := NewChunkState(testConfig(chunk))
			p.Begin(p.ChunkOf(tc.first))
			if p.Add(tc.first, ev("a")) == Duplicate {
				t.Fatal("first occurrence reported as duplicate")
			}
			for c := p.ChunkOf(tc.first) + 1; c <= p.ChunkOf(tc.repeat); c++ {
				p.Begin(c)
			}
			if got := p.Add(tc.repeat, ev("a")) == Duplicate; got != tc.duplicate {
				t.Errorf("duplicate = %v, want %v", got, tc.duplicate)
			}
		})
	}
}

// TestDedupChainIsReplayDeterministic repeats one id in three consecutive
// chunks. The consumer that read all three and one that resumes at the third
// chunk (warming up on the second) must drop the same repeats.
func TestDedupChainIsReplayDeterministic(t *testing.T) {
	const chunk = 100
	ev := &events.Event{ID: []byte("a"), TimeMs: 60_000, WorkspaceID: []byte("w"), Model: []byte("m"), Endpoint: []byte("e")}
	offsets := []int64{10, 150, 250} // chunks 0, 1 and 2

	full := NewChunkState(testConfig(chunk))
	var got []Outcome
	for _, off := range offsets {
		if c := full.ChunkOf(off); c != full.Chunk() {
			full.Begin(c)
		}
		got = append(got, full.Add(off, ev))
	}
	want := []Outcome{Counted, Duplicate, Duplicate}
	if !slices.Equal(got, want) {
		t.Fatalf("full pass outcomes = %v, want %v", got, want)
	}

	resumed := NewChunkState(testConfig(chunk))
	resumed.Begin(1)
	resumed.Warm(ev) // offset 150, read during warm-up
	resumed.Begin(2)
	if o := resumed.Add(250, ev); o != want[2] {
		t.Errorf("after resuming at chunk 2 the third repeat is %v, want %v as in the full pass", o, want[2])
	}
}

func TestBatchHoldsOnlyChangedGroups(t *testing.T) {
	p := NewChunkState(testConfig(1000))
	p.Begin(0)
	mk := func(id, ws string, ms int64) *events.Event {
		return &events.Event{ID: []byte(id), TimeMs: ms, WorkspaceID: []byte(ws), Model: []byte("m"), Endpoint: []byte("e"),
			Usage: events.Usage{InputTokens: 3, OutputTokens: 4, TotalTokens: 7}}
	}
	p.Add(0, mk("1", "a", 0))
	p.Add(1, mk("2", "b", 0))
	p.Add(2, mk("3", "a", 61_000))
	b := p.Batch("t", 3)
	if got := [2]int{len(b.Windows[0].Rows), len(b.Windows[1].Rows)}; got != [2]int{3, 2} {
		t.Fatalf("first batch rows per window = %v, want [3 2]", got)
	}
	p.Add(3, mk("4", "b", 1000))
	b = p.Batch("t", 3)
	if got := [2]int{len(b.Windows[0].Rows), len(b.Windows[1].Rows)}; got != [2]int{1, 1} {
		t.Fatalf("second batch rows per window = %v, want [1 1]", got)
	}
	r := b.Windows[0].Rows[0]
	want := Measures{Requests: 2, InputTokens: 6, OutputTokens: 8, TotalTokens: 14}
	if r.Dims.WorkspaceID != "b" || r.WindowStart != 0 || r.Measures != want {
		t.Errorf("row = %+v, want workspace b, window 0, measures %+v", r, want)
	}
	if b.Version() != 3 || b.Progress.Accepted != 4 || b.Chunk != 0 || b.Partition != 3 {
		t.Errorf("batch version %d accepted %d chunk %d partition %d", b.Version(), b.Progress.Accepted, b.Chunk, b.Partition)
	}
	if p.Pending() {
		t.Error("Pending after Batch")
	}
}

func BenchmarkAdd(b *testing.B) {
	cfg := DefaultConfig()
	p := NewChunkState(cfg)
	p.Begin(0)
	evs := make([]events.Event, 1024)
	for i := range evs {
		evs[i] = events.Event{
			TimeMs:      time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).UnixMilli() + int64(i%60)*1000,
			WorkspaceID: []byte(fmt.Sprintf("ws_%d", i%8)), ProjectID: []byte("proj"), APIKeyID: []byte("key"),
			Provider: []byte("openai"), Model: []byte(fmt.Sprintf("model_%d", i%4)), Endpoint: []byte("images.generations"),
			StatusCode: 200, LatencyMs: 1234, Usage: events.Usage{InputTokens: 50, OutputTokens: 4160, TotalTokens: 4210},
		}
	}
	id := []byte("evt_00000000000000000000000000")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev := &evs[i%len(evs)]
		// A distinct id per event, written in place so the benchmark itself does not allocate.
		for j, v := 0, i; j < 16; j, v = j+1, v>>4 {
			id[len(id)-1-j] = "0123456789abcdef"[v&15]
		}
		ev.ID = id
		if c := p.ChunkOf(int64(i)); c != p.Chunk() {
			p.Batch("t", 0)
			p.Begin(c)
		}
		p.Add(int64(i), ev)
		if i%4096 == 4095 { // about one flush interval's worth of events
			p.Batch("t", 0)
		}
	}
}
