package consumer

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
)

// fakeLog is one partition's log: records by offset, minus what retention,
// DeleteRecords or compaction removed.
type fakeLog struct {
	recs    []partitionlog.Record
	first   int64          // log start offset
	removed map[int64]bool // compacted away
}

func (l *fakeLog) append(id string, tsMs int64, ws string, input int) {
	off := int64(len(l.recs))
	v := fmt.Sprintf(`{"id":%q,"timestamp":%q,"workspace_id":%q,"project_id":"p","api_key_id":"k",`+
		`"provider":"openai","model":"gpt-image-1","endpoint":"images.generations","status_code":200,"latency_ms":5,`+
		`"usage":{"input_tokens":%d,"output_tokens":1,"total_tokens":%d}}`,
		id, time.UnixMilli(tsMs).UTC().Format(time.RFC3339Nano), ws, input, input+1)
	l.recs = append(l.recs, partitionlog.Record{Offset: off, Value: []byte(v), Time: time.UnixMilli(tsMs)})
}

func (l *fakeLog) present(off int64) bool { return off >= l.first && !l.removed[off] }

type fakeGen struct{ commits []int64 }

func (g *fakeGen) CommitOffsets(o map[string]map[int]int64) error {
	for _, ps := range o {
		for _, off := range ps {
			g.commits = append(g.commits, off)
		}
	}
	return nil
}

func newTestWorker(t *testing.T, table *memTable, agg aggregate.Config) (*partitionWorker, *fakeGen) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Brokers, cfg.Topic = []string{"127.0.0.1:1"}, "usage"
	cfg.RetryBackoffMax = 100 * time.Millisecond
	c, err := New(cfg, agg, events.DefaultConfig(), table, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	gen := &fakeGen{}
	return newPartitionWorker(c, gen, 0), gen
}

// run resumes a worker from committed and feeds it the log from where it
// starts reading, flushing now and then as the ticker would. It stops after
// stopAfter records without a final flush (a crash: SIGKILL), optionally in
// the middle of a write that reached only some tables; otherwise it reads
// to the end and flushes. It returns the last offset committed.
func (l *fakeLog) run(t *testing.T, r *rand.Rand, table *memTable, agg aggregate.Config, committed int64, stopAfter int, partialCrash bool) int64 {
	t.Helper()
	w, gen := newTestWorker(t, table, agg)
	ctx := context.Background()
	start := w.resume(committed, l.first)
	expected := start // as partitionlog reports gaps: offsets absent from the log
	for off := start; off < int64(len(l.recs)); off++ {
		if !l.present(off) {
			continue
		}
		if off > expected {
			w.gap(expected, off)
		}
		expected = off + 1
		if stopAfter == 0 {
			if partialCrash && w.state.Pending() {
				table.partialOnce.Store(true)
				dead, cancel := context.WithCancel(ctx)
				cancel()
				if err := w.flush(dead); err == nil {
					t.Fatal("a write cut short reported success")
				}
			}
			return last(gen.commits, committed)
		}
		stopAfter--
		m := l.recs[off]
		if err := w.handle(ctx, &m); err != nil {
			t.Fatal(err)
		}
		if r.IntN(12) == 0 && w.state.Pending() {
			if err := w.flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if w.state.Pending() {
		if err := w.flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return last(gen.commits, committed)
}

func last(commits []int64, def int64) int64 {
	if len(commits) == 0 {
		return def
	}
	return commits[len(commits)-1]
}

// TestNothingCountedIsLostWhenTheLogLosesRecords drives the real partition
// worker over a fake log through crashes (some in the middle of a write),
// then has retention, DeleteRecords or compaction remove records it already
// wrote, appends more, and resumes from the commit, from a stale commit or
// from the earliest offset (a group reset). Every event ever produced must
// be counted exactly once in every window: ids are unique, so the expected
// totals are simply everything produced.
func TestNothingCountedIsLostWhenTheLogLosesRecords(t *testing.T) {
	agg := aggregate.DefaultConfig()
	agg.ChunkSize, agg.MaxGroups, agg.MaxBatchRows = 100, 100, 1000 // small chunks, segments cut often
	base := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).UnixMilli()
	for seed := range uint64(150) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			table := newMemTable()
			l := &fakeLog{removed: map[int64]bool{}}
			var wantReq, wantIn uint64
			produce := func(n int) {
				for range n {
					in := r.IntN(1000)
					l.append(fmt.Sprintf("evt_%d", len(l.recs)), base+int64(len(l.recs))*int64(r.IntN(40_000)),
						fmt.Sprintf("ws_%d", r.IntN(60)), in)
					wantReq++
					wantIn += uint64(in)
				}
			}
			produce(50 + r.IntN(400))
			commit := l.run(t, r, table, agg, -1, r.IntN(len(l.recs)+1), r.IntN(3) == 0)
			stale := commit
			if len(l.recs) > 0 && r.IntN(2) == 0 {
				commit = l.run(t, r, table, agg, commit, r.IntN(len(l.recs)+1), r.IntN(3) == 0)
			}
			// Remove only what was durably written: a record removed before
			// it was ever written is lost by any consumer.
			durable := table.next[0]
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
			produce(r.IntN(300))
			from := commit
			switch r.IntN(3) {
			case 0:
				from = -1 // group reset: replay from the earliest retained offset
			case 1:
				from = stale
			}
			commit = l.run(t, r, table, agg, from, r.IntN(len(l.recs)+1), r.IntN(3) == 0)
			l.run(t, r, table, agg, commit, -1, false)

			if len(table.conflicts) > 0 {
				t.Fatalf("%d conflicting rows, e.g. %s", len(table.conflicts), table.conflicts[0])
			}
			for _, win := range []string{"1m", "1h"} {
				var req, in uint64
				for _, g := range table.totals(win) {
					req += g.Measures.Requests
					in += g.Measures.InputTokens
				}
				if req != wantReq || in != wantIn {
					t.Fatalf("%s: requests %d, input tokens %d; want %d and %d (first=%d, removed=%d)",
						win, req, in, wantReq, wantIn, l.first, len(l.removed))
				}
			}
		})
	}
}
