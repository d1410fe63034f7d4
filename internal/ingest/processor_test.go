package ingest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/events"
	"github.com/usage-rollup/usage-rollup/internal/partitionlog"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/rollupfake"
)

// The processor's tests drive the real processor (resume, gaps, carry,
// decode, aggregate, flush policy) and the real writer chain over a fake
// log and the rollupfake tables: no broker, no server.

// logEvent is what the generator knows about one record, independently of
// the decoder: the expectations below are computed from it.
type logEvent struct {
	seal      bool // a seal record, not an event
	malformed bool
	id        string
	tsMs      int64
	ws        string
	status    int
	latency   uint64
	input     uint64
	output    uint64
}

// fakeLog is one partition's log: records by offset, minus what retention,
// DeleteRecords or compaction removed.
type fakeLog struct {
	evs     []logEvent
	recs    []partitionlog.Record
	first   int64          // log start offset
	removed map[int64]bool // compacted away
	// sealOneIn makes generate write a seal record, as an idle partition's
	// consumer does, before about one record in sealOneIn; 0: never.
	sealOneIn int
}

func newFakeLog() *fakeLog { return &fakeLog{removed: map[int64]bool{}} }

func (l *fakeLog) append(e logEvent) {
	off := int64(len(l.recs))
	if e.seal {
		l.evs = append(l.evs, e)
		l.recs = append(l.recs, partitionlog.Record{Offset: off, Key: []byte(sealKey), Value: []byte{}, Time: time.Now()})
		return
	}
	v := []byte("{not json")
	if !e.malformed {
		v = fmt.Appendf(nil, `{"id":%q,"timestamp":%q,"workspace_id":%q,"project_id":"p","api_key_id":"k",`+
			`"provider":"openai","model":"gpt-image-1","endpoint":"images.generations","status_code":%d,"latency_ms":%d,`+
			`"usage":{"input_tokens":%d,"output_tokens":%d,"total_tokens":%d}}`,
			e.id, time.UnixMilli(e.tsMs).UTC().Format(time.RFC3339Nano), e.ws, e.status, e.latency,
			e.input, e.output, e.input+e.output)
	}
	l.evs = append(l.evs, e)
	// The record time is the event time: within MAX_FUTURE_SKEW of it.
	l.recs = append(l.recs, partitionlog.Record{Offset: off, Value: v, Time: time.UnixMilli(e.tsMs)})
}

// generate appends n records: producer retries (an id repeated a few
// records later), late events, malformed messages, many workspaces.
func (l *fakeLog) generate(r *rand.Rand, n int, dups, malformed bool) {
	base := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).UnixMilli()
	for range n {
		if l.sealOneIn > 0 && r.IntN(l.sealOneIn) == 0 {
			l.append(logEvent{seal: true})
		}
		i := len(l.recs)
		if malformed && r.IntN(25) == 0 {
			l.append(logEvent{malformed: true})
			continue
		}
		id := fmt.Sprintf("evt_%d", i)
		if dups && i > 0 && r.IntN(10) == 0 {
			id = fmt.Sprintf("evt_%d", i-1-r.IntN(min(i, 8)))
		}
		ts := base + int64(i)*1500
		if r.IntN(15) == 0 { // late by up to two hours
			ts -= r.Int64N(2 * 3600 * 1000)
		}
		l.append(logEvent{id: id, tsMs: ts, ws: fmt.Sprintf("ws_%d", r.IntN(60)),
			status: []int{200, 200, 200, 429, 500}[r.IntN(5)], latency: uint64(r.IntN(9000)),
			input: uint64(r.IntN(1000)), output: uint64(r.IntN(5000))})
	}
}

func (l *fakeLog) present(off int64) bool { return off >= l.first && !l.removed[off] }

// expectation is what the rules say the totals are, computed by brute force
// from the generator's values: an id counts unless a valid event with it is
// earlier in the same or the previous chunk; an event is late when older
// than the newest valid event time of those two chunks before it, minus the
// allowed lateness.
type expectation struct {
	requests, errors, input, total, latencySum, late uint64
	rejected                                         int
}

func (l *fakeLog) expected(chunk int64, lateness time.Duration) expectation {
	var e expectation
	for off, ev := range l.evs {
		if ev.seal {
			continue
		}
		if ev.malformed {
			e.rejected++
			continue
		}
		c := int64(off) / chunk
		newest, dup := int64(0), false
		for o := max((c-1)*chunk, 0); o < int64(off); o++ {
			if l.evs[o].malformed || l.evs[o].seal {
				continue
			}
			newest = max(newest, l.evs[o].tsMs)
			dup = dup || l.evs[o].id == ev.id
		}
		if dup {
			continue
		}
		e.requests++
		if ev.status >= 400 {
			e.errors++
		}
		e.input += ev.input
		e.total += ev.input + ev.output
		e.latencySum += ev.latency
		if newest > 0 && ev.tsMs < newest-lateness.Milliseconds() {
			e.late++
		}
	}
	return e
}

func (e expectation) check(t *testing.T, table *rollupfake.Table, windows []aggregate.Window) {
	t.Helper()
	if c := table.Conflicts(); len(c) > 0 {
		t.Fatalf("%d conflicting rows, e.g. %s", len(c), c[0])
	}
	for _, w := range windows {
		m := table.Sum(w.Name)
		got := expectation{m.Requests, m.Errors, m.InputTokens, m.TotalTokens, m.LatencyMsSum, m.LateEvents, e.rejected}
		if got != e {
			t.Fatalf("window %s: got %+v, want %+v", w.Name, got, e)
		}
	}
	if n := table.Rejected(); n != e.rejected {
		t.Fatalf("%d rejected rows, want %d", n, e.rejected)
	}
}

// session is one processor's life: it resumes from committed and reads until
// it stops.
type session struct {
	committed  int64 // -1: nothing committed (or a group reset to earliest)
	stopAfter  int   // records handled before a crash (SIGKILL, no final flush); < 0: read to the end
	flushEvery int   // flush as the ticker would, every this many records; 0: randomly
	// partialCrash crashes in the middle of a write that reached only the
	// first window's table.
	partialCrash bool
	// loseLastCommit drops the commit of the session's last flush, as a
	// crash between a write and its commit does.
	loseLastCommit bool
}

func newTestProcessor(t *testing.T, table *rollupfake.Table, agg aggregate.Config, commits *[]int64) *processor {
	t.Helper()
	met := newMetrics(prometheus.NewRegistry(), []string{"1m", "1h"})
	log := zerolog.Nop()
	committed := int64(-1)
	return &processor{
		agg: agg, topic: "usage", part: 0, log: log, met: met,
		store: &partitionStore{
			out: func(ctx context.Context, b *aggregate.Batch, _ bool) error {
				return table.WriteBatches(ctx, []*aggregate.Batch{b})
			},
			w: table, topic: "usage", partition: 0, met: met, log: log, backoffMax: 100 * time.Millisecond,
		},
		durable: func(_ context.Context, b *aggregate.Batch, _ bool) {
			if next := b.Progress.LastOffset + 1; next > committed { // commits only move forward
				committed = next
				*commits = append(*commits, next)
			}
		},
		dec:   events.NewDecoder(events.DefaultConfig()),
		state: aggregate.NewChunkState(agg),
	}
}

// run plays one session over the log and returns the group's committed
// offset afterwards.
func (l *fakeLog) run(t *testing.T, r *rand.Rand, table *rollupfake.Table, agg aggregate.Config, s session) int64 {
	t.Helper()
	var commits []int64
	p := newTestProcessor(t, table, agg, &commits)
	ctx := context.Background()
	committed := s.committed
	if committed >= 0 {
		commits = append(commits, committed)
	}
	result := func() int64 {
		if s.loseLastCommit && len(commits) > 0 {
			commits = commits[:len(commits)-1]
		}
		if len(commits) == 0 {
			return s.committed
		}
		return commits[len(commits)-1]
	}
	start := p.resume(committed, l.first)
	expected := start // as partitionlog reports gaps: offsets absent from the log
	left := s.stopAfter
	for off := start; off < int64(len(l.recs)); off++ {
		if !l.present(off) {
			continue
		}
		if left == 0 {
			if s.partialCrash && p.pending() {
				table.PartialOnce.Store(true)
				dead, cancel := context.WithCancel(ctx)
				cancel()
				if err := p.flush(dead); err == nil {
					t.Fatal("a write cut short reported success")
				}
			}
			return result()
		}
		left--
		if off > expected {
			p.gap(expected, off)
		}
		expected = off + 1
		if err := p.handle(ctx, &l.recs[off]); err != nil {
			t.Fatal(err)
		}
		flush := r.IntN(12) == 0
		if s.flushEvery > 0 {
			flush = (off+1)%int64(s.flushEvery) == 0
		}
		if flush && p.pending() {
			if err := p.flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if p.pending() { // the end of the log: the ticker flushes
		if err := p.flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return result()
}

// TestCrashesAndReplaysGiveExactSums: whatever sequence of crashes (before
// or after a write, before its commit, in the middle of one), restarts and
// replays from the earliest offset, every window's sums equal the rules'
// totals, computed by brute force from the generator's own values.
func TestCrashesAndReplaysGiveExactSums(t *testing.T) {
	const n, chunk = 5000, 300
	r := rand.New(rand.NewPCG(7, 1))
	l := newFakeLog()
	l.generate(r, n, true, true)
	agg := aggregate.DefaultConfig()
	agg.ChunkSize, agg.MaxBatchRows = chunk, 1000
	want := l.expected(chunk, agg.AllowedLateness)
	if want.late == 0 || want.rejected == 0 || want.requests == n-uint64(want.rejected) {
		t.Fatalf("the log lacks late events, rejections or duplicates: %+v", want)
	}
	cases := []struct {
		name      string
		sessions  []session // the last one reads to the end
		maxGroups int       // 0: the default, no segment cuts
	}{
		{"single pass", []session{{stopAfter: -1, flushEvery: 97}}, 0},
		{"crash mid chunk", []session{{stopAfter: 450, flushEvery: 50}, {stopAfter: -1, flushEvery: 50}}, 0},
		{"crash after a write, before its commit", []session{{stopAfter: 600, flushEvery: 100, loseLastCommit: true}, {stopAfter: -1, flushEvery: 100}}, 0},
		{"crash in the middle of a write", []session{{stopAfter: 777, flushEvery: 64, partialCrash: true}, {stopAfter: -1, flushEvery: 64}}, 0},
		{"many crashes", []session{{stopAfter: 37}, {stopAfter: 811}, {stopAfter: 5}, {stopAfter: 299, partialCrash: true}, {stopAfter: 1200}, {stopAfter: 3}, {stopAfter: -1}}, 0},
		{"full replay after the end", []session{{stopAfter: -1, flushEvery: 128}, {committed: -1, stopAfter: -1, flushEvery: 128}}, 0},
		{"group cap cuts segments, with crashes and a replay", []session{{stopAfter: 450, flushEvery: 77}, {stopAfter: 1201, flushEvery: 77}, {stopAfter: -1, flushEvery: 77}, {committed: -1, stopAfter: -1, flushEvery: 77}}, 100},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := agg
			if tc.maxGroups > 0 {
				cfg.MaxGroups = tc.maxGroups
			}
			table := rollupfake.New(cfg.Windows)
			committed := int64(-1)
			for i, s := range tc.sessions {
				if i > 0 && s.committed != -1 {
					s.committed = committed
				}
				if i == 0 {
					s.committed = -1
				}
				committed = l.run(t, r, table, cfg, s)
			}
			want.check(t, table, cfg.Windows)
			if chunks := (n + chunk - 1) / chunk; tc.maxGroups > 0 && table.Segments() <= chunks {
				t.Errorf("%d segments over %d chunks: the group cap never cut a segment", table.Segments(), chunks)
			}
		})
	}
}

// TestNothingCountedIsLostWhenTheLogLosesRecords runs processors through
// crashes (some in the middle of a write), then has retention,
// DeleteRecords or compaction remove records already written, appends more,
// and resumes from the commit, from a stale commit or from the earliest
// offset (a group reset). Every event ever produced must be counted exactly
// once in every window: ids are unique, so the expected totals are simply
// everything produced.
func TestNothingCountedIsLostWhenTheLogLosesRecords(t *testing.T) {
	agg := aggregate.DefaultConfig()
	agg.ChunkSize, agg.MaxGroups, agg.MaxBatchRows = 100, 100, 1000 // small chunks, segments cut often
	for seed := range uint64(150) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			table := rollupfake.New(agg.Windows)
			l := newFakeLog()
			if seed%2 == 1 {
				l.sealOneIn = 40
			}
			l.generate(r, 50+r.IntN(400), false, false)
			commit := l.run(t, r, table, agg, session{committed: -1, stopAfter: r.IntN(len(l.recs) + 1), partialCrash: r.IntN(3) == 0})
			stale := commit
			if r.IntN(2) == 0 {
				commit = l.run(t, r, table, agg, session{committed: commit, stopAfter: r.IntN(len(l.recs) + 1), partialCrash: r.IntN(3) == 0})
			}
			// Remove only what was durably written: a record removed before
			// it was ever written is lost by any consumer.
			durable := table.Next(0)
			switch r.IntN(3) {
			case 0: // retention or DeleteRecords
				l.first = r.Int64N(durable + 1)
			case 1: // compaction
				for off := range durable {
					if r.IntN(8) == 0 {
						l.removed[off] = true
					}
				}
			default:
				l.first = r.Int64N(durable + 1)
				for off := l.first; off < durable; off++ {
					if r.IntN(8) == 0 {
						l.removed[off] = true
					}
				}
			}
			l.generate(r, r.IntN(300), false, false)
			from := commit
			switch r.IntN(3) {
			case 0:
				from = -1 // group reset: replay from the earliest retained offset
			case 1:
				from = stale
			}
			commit = l.run(t, r, table, agg, session{committed: from, stopAfter: r.IntN(len(l.recs) + 1), partialCrash: r.IntN(3) == 0})
			l.run(t, r, table, agg, session{committed: commit, stopAfter: -1})

			var want, wantIn uint64
			for _, e := range l.evs {
				if !e.seal {
					want++
					wantIn += e.input
				}
			}
			if c := table.Conflicts(); len(c) > 0 {
				t.Fatalf("%d conflicting rows, e.g. %s", len(c), c[0])
			}
			for _, w := range agg.Windows {
				if m := table.Sum(w.Name); m.Requests != want || m.InputTokens != wantIn {
					t.Fatalf("%s: requests %d, input tokens %d; want %d and %d (first=%d, removed=%d)",
						w.Name, m.Requests, m.InputTokens, want, wantIn, l.first, len(l.removed))
				}
			}
		})
	}
}

// TestSealRecordsCutSegments: seal records end segments where they stand in
// the log, so a single pass and a history of crashes and a full replay write
// the same pieces with the same sums; no piece changes once a progress row
// says it is complete (rollupfake reports that as a conflict); the sums stay
// exact, and usage_chunks counts the seals.
func TestSealRecordsCutSegments(t *testing.T) {
	const n, chunk = 3000, 400
	r := rand.New(rand.NewPCG(11, 3))
	l := newFakeLog()
	l.sealOneIn = 70
	l.generate(r, n, true, true)
	seals := 0
	for _, e := range l.evs {
		if e.seal {
			seals++
		}
	}
	agg := aggregate.DefaultConfig()
	agg.ChunkSize, agg.MaxBatchRows = chunk, 1000
	want := l.expected(chunk, agg.AllowedLateness)

	once := rollupfake.New(agg.Windows)
	l.run(t, r, once, agg, session{committed: -1, stopAfter: -1, flushEvery: 53})
	want.check(t, once, agg.Windows)
	if chunks := (len(l.recs) + chunk - 1) / chunk; once.Segments() <= chunks+seals/2 {
		t.Fatalf("%d segments over %d chunks and %d seals: seals did not cut", once.Segments(), chunks, seals)
	}
	if got := once.Seals(0); got != uint64(seals) {
		t.Fatalf("usage_chunks counts %d seals, the log has %d", got, seals)
	}

	crashed := rollupfake.New(agg.Windows)
	committed := int64(-1)
	for _, s := range []session{{stopAfter: 333}, {stopAfter: 901, partialCrash: true}, {stopAfter: 17, loseLastCommit: true}, {stopAfter: -1}} {
		s.committed = committed
		committed = l.run(t, r, crashed, agg, s)
	}
	l.run(t, r, crashed, agg, session{committed: -1, stopAfter: -1, flushEvery: 29}) // group reset
	want.check(t, crashed, agg.Windows)
	a, b := once.Pieces(), crashed.Pieces()
	if len(a) != len(b) {
		t.Fatalf("single pass wrote %d pieces, crashes and a replay %d", len(a), len(b))
	}
	for k, m := range a {
		if b[k] != m {
			t.Fatalf("piece %+v: single pass %+v, crashes and a replay %+v", k, m, b[k])
		}
	}
}

// TestDrainedBacklogIsFlushedAtOnce: a partition that reaches the log end
// after being backlogRecords or more behind flushes without waiting for the
// ticker; one that keeps up (never that far behind) leaves its flushes to
// the ticker.
func TestDrainedBacklogIsFlushedAtOnce(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 9))
	l := newFakeLog()
	l.generate(r, 200, false, false)
	agg := aggregate.DefaultConfig()
	table := rollupfake.New(agg.Windows)
	var commits []int64
	loop := &partitionLoop{proc: newTestProcessor(t, table, agg, &commits)}
	loop.proc.resume(-1, 0)
	ctx := context.Background()
	feed := func(from, to, end int64) {
		t.Helper()
		for off := from; off < to; off++ {
			if err := loop.proc.handle(ctx, &l.recs[off]); err != nil {
				t.Fatal(err)
			}
		}
		if err := loop.drained(ctx, &partitionlog.Fetch{Next: to, HighWatermark: end, LastStableOffset: end}); err != nil {
			t.Fatal(err)
		}
	}
	feed(0, 50, 60) // keeping up: 10 behind
	feed(50, 60, 60)
	if len(commits) != 0 || !loop.proc.pending() {
		t.Fatalf("a partition that kept up flushed on reaching the log end: commits %v", commits)
	}
	feed(60, 100, 100+backlogRecords) // a backlog
	if len(commits) != 0 {
		t.Fatalf("flushed in the middle of a backlog: commits %v", commits)
	}
	feed(100, 200, 200) // drained
	if len(commits) != 1 || commits[0] != 200 || loop.proc.pending() {
		t.Fatalf("draining the backlog did not flush everything: commits %v, pending %v", commits, loop.proc.pending())
	}
}
