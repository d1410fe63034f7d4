package aggregate

import (
	"fmt"
	"math/rand/v2"
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

// record is one log entry of a simulated partition.
type record struct {
	ev     events.Event
	reject bool
}

// tableKey mirrors the ORDER BY of usage_rollup_<w>.
type tableKey struct {
	window  string
	start   int64
	dims    Dims
	chunk   int64
	segment int64
}

type tableRow struct {
	version  uint64
	measures Measures
}

// replacingTable applies ReplacingMergeTree(version) semantics, as FINAL
// reads them: per key, the row with the highest version wins.
type replacingTable struct {
	t        *testing.T
	rows     map[tableKey]tableRow
	rejected map[int64]string
}

func newTable(t *testing.T) *replacingTable {
	return &replacingTable{t: t, rows: map[tableKey]tableRow{}, rejected: map[int64]string{}}
}

func (rt *replacingTable) write(b *Batch) {
	rt.t.Helper()
	for _, wr := range b.Windows {
		for _, r := range wr.Rows {
			k := tableKey{wr.Window.Name, r.WindowStart, r.Dims, b.Chunk, b.Segment}
			old, ok := rt.rows[k]
			if ok && old.version == b.Version() && old.measures != r.Measures {
				rt.t.Fatalf("same key %+v and version %d with different measures: %+v vs %+v", k, b.Version(), old.measures, r.Measures)
			}
			if !ok || b.Version() >= old.version {
				rt.rows[k] = tableRow{b.Version(), r.Measures}
			}
		}
	}
	for _, r := range b.Rejected {
		rt.rejected[r.Offset] = r.Reason
	}
}

// sums returns per-window totals, the analyst's sum() over the view.
func (rt *replacingTable) sums() map[string]Measures {
	out := map[string]Measures{}
	for k, r := range rt.rows {
		m := out[k.window]
		m.Merge(&r.measures)
		out[k.window] = m
	}
	return out
}

func genLog(seed uint64, n int) []record {
	r := rand.New(rand.NewPCG(seed, 1))
	base := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).UnixMilli()
	log := make([]record, 0, n)
	for i := 0; len(log) < n; i++ {
		if r.IntN(20) == 0 {
			log = append(log, record{reject: true})
			continue
		}
		id := fmt.Sprintf("evt_%d", i)
		if i > 0 && r.IntN(10) == 0 { // a producer retry a few records later
			id = fmt.Sprintf("evt_%d", i-1-r.IntN(min(i, 8)))
		}
		ts := base + int64(i)*1500
		if r.IntN(15) == 0 { // late by up to two hours
			ts -= r.Int64N(2 * 3600 * 1000)
		}
		in := uint64(r.IntN(500))
		ev := events.Event{
			ID: []byte(id), TimeMs: ts,
			WorkspaceID: []byte(fmt.Sprintf("ws_%d", r.IntN(3))),
			Model:       []byte([]string{"gpt-image-1", "dall-e-3"}[r.IntN(2)]),
			Endpoint:    []byte("images.generations"),
			StatusCode:  int32([]int{200, 200, 200, 429, 500}[r.IntN(5)]),
			LatencyMs:   uint64(r.IntN(9000)),
			Usage:       events.Usage{InputTokens: in, InputTextTokens: in / 2, InputImageTokens: in - in/2, OutputTokens: uint64(r.IntN(5000))},
		}
		ev.Usage.TotalTokens = ev.Usage.InputTokens + ev.Usage.OutputTokens
		log = append(log, record{ev: ev})
	}
	return log
}

// expected computes per-window totals by brute force from the rules: an id
// counts unless it was valid earlier in the same or previous chunk; an event
// is late when older than the newest valid event time of those two chunks
// before it, minus the allowed lateness.
func expected(log []record, chunk int64, lateness time.Duration) (Measures, int) {
	var m Measures
	seen := map[string]int64{} // id -> chunk of last acceptance as seen by the rule
	rejected := 0
	for off, r := range log {
		if r.reject {
			rejected++
			continue
		}
		c := int64(off) / chunk
		newest := int64(0)
		for o := max((c-1)*chunk, 0); o < int64(off); o++ {
			if !log[o].reject {
				newest = max(newest, log[o].ev.TimeMs)
			}
		}
		late := newest > 0 && r.ev.TimeMs < newest-lateness.Milliseconds()
		id := string(r.ev.ID)
		last, ok := seen[id]
		seen[id] = c
		if ok && last >= c-1 {
			continue
		}
		addTo(&m, &r.ev, late)
	}
	return m, rejected
}

// consume models the consumer loop: resume at committed, warm the previous
// chunk, aggregate, flush every flushEvery records and at chunk ends, commit
// after each flush. It stops after stopAfter records and returns the commit.
func consume(t *testing.T, log []record, cfg Config, table *replacingTable, committed int64, flushEvery, stopAfter int) int64 {
	t.Helper()
	p := NewPartition(cfg)
	chunk := p.ChunkOf(committed)
	start := p.ChunkStart(chunk)
	p.Begin(chunk - 1)
	for off := max(p.ChunkStart(chunk-1), 0); off < start; off++ {
		if !log[off].reject {
			p.Warm(&log[off].ev)
		}
	}
	p.Begin(chunk)
	flush := func() {
		b := p.Batch("usage", 0)
		table.write(b)
		committed = b.Progress.LastOffset + 1
	}
	off := start
	for ; off < int64(len(log)) && stopAfter > 0; off, stopAfter = off+1, stopAfter-1 {
		if c := p.ChunkOf(off); c != p.Chunk() {
			if p.Pending() {
				flush()
			}
			p.Begin(c)
		}
		if p.NeedsSegment(off) {
			flush()
			p.BeginSegment(off)
		}
		r := log[off]
		if r.reject {
			p.Reject(off, &events.RejectError{Reason: events.ReasonInvalidJSON}, time.Time{}, []byte("{"))
		} else {
			p.Add(off, &r.ev)
		}
		if (off+1)%int64(flushEvery) == 0 {
			flush()
		}
	}
	if off == int64(len(log)) && p.Pending() { // reached the end of the log: final flush
		flush()
	}
	return committed
}

func TestCrashesAndReplaysGiveExactSums(t *testing.T) {
	const n, chunk = 5000, 300
	log := genLog(7, n)
	want, wantRejected := expected(log, chunk, testConfig(chunk).AllowedLateness)
	if want.LateEvents == 0 {
		t.Fatal("the generated log has no late events; the test would not check them")
	}
	cases := []struct {
		name      string
		steps     []int // records consumed by each process before it dies; the last one runs to the end
		flush     int
		maxGroups int // 0: no segment cuts
	}{
		{"single pass", []int{n}, 97, 0},
		{"crash mid chunk", []int{450, n}, 50, 0},
		{"crash right after a flush, before commit", []int{600, n}, 100, 0},
		{"many crashes", []int{37, 811, 5, 299, 1200, 3, n}, 64, 0},
		{"full replay after the end", []int{n, -1}, 128, 0},
		{"group cap cuts segments, with crashes and a replay", []int{450, 1201, n, -1}, 77, 40},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			table := newTable(t)
			cfg := testConfig(chunk)
			if tc.maxGroups > 0 {
				cfg.MaxGroups = tc.maxGroups
			}
			var committed int64
			for _, s := range tc.steps {
				if s < 0 { // group reset to earliest
					committed, s = 0, n
				}
				got := consume(t, log, cfg, table, committed, tc.flush, s)
				if s == 600 { // lose the commit of the last flush
					got = committed + 1
				}
				committed = got
			}
			sums := table.sums()
			for _, w := range cfg.Windows {
				if sums[w.Name] != want {
					t.Errorf("window %s: sums %+v, want %+v", w.Name, sums[w.Name], want)
				}
			}
			segments := map[[2]int64]bool{}
			for k := range table.rows {
				segments[[2]int64{k.chunk, k.segment}] = true
			}
			if chunks := (n + chunk - 1) / chunk; tc.maxGroups > 0 && len(segments) <= chunks {
				t.Errorf("%d segments over %d chunks: the group cap never cut a segment", len(segments), chunks)
			}
			if len(table.rejected) != wantRejected {
				t.Errorf("rejected rows %d, want %d", len(table.rejected), wantRejected)
			}
		})
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
			p := NewPartition(testConfig(chunk))
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

	full := NewPartition(testConfig(chunk))
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

	resumed := NewPartition(testConfig(chunk))
	resumed.Begin(1)
	resumed.Warm(ev) // offset 150, read during warm-up
	resumed.Begin(2)
	if o := resumed.Add(250, ev); o != want[2] {
		t.Errorf("after resuming at chunk 2 the third repeat is %v, want %v as in the full pass", o, want[2])
	}
}

func TestBatchHoldsOnlyChangedGroups(t *testing.T) {
	p := NewPartition(testConfig(1000))
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
	p := NewPartition(cfg)
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
