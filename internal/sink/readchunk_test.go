package sink

import (
	"reflect"
	"slices"
	"testing"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
)

// segmentBatch is the batch of partition 3, chunk 5 (offsets 5000-5999),
// segment, prefix ending at last, with rows in the 1m and 1h windows.
func segmentBatch(segment, last int64, rows1m, rows1h []aggregate.Row) *aggregate.Batch {
	b := rollup(5, 5000, last, rows1m...)
	b.Segment = segment
	b.Windows = append(b.Windows, aggregate.WindowRows{Window: w1h, Rows: rows1h})
	b.Progress.Rejected, b.Progress.Duplicates, b.Progress.Late = 2, uint64(last-5000)/10, 1
	b.Progress.MaxEventTimeMs, b.Progress.WatermarkMs = (t0+90)*1000+999, (t0-510)*1000+250
	return b
}

func stored(version int64, rows ...aggregate.Row) []aggregate.StoredRow {
	var out []aggregate.StoredRow
	for _, r := range rows {
		out = append(out, aggregate.StoredRow{Row: r, Version: version})
	}
	return out
}

func readChunk(t *testing.T, s *Sink, topic string, partition int32, chunk int64) *aggregate.StoredChunk {
	t.Helper()
	got, err := s.ReadChunk(t.Context(), topic, partition, chunk)
	if err != nil {
		t.Fatalf("ReadChunk(%s, %d, %d): %v", topic, partition, chunk, err)
	}
	return got
}

func TestReadChunk(t *testing.T) {
	s := newTestSink(t)
	a1, b1 := row(t0, "w1", "gpt-4o", 3, 2), row(t0+60, "w2", "gpt-4o", 1, 1)
	a2 := row(t0, "w1", "gpt-4o", 5, 4)
	h1, h2 := row(t0, "w1", "gpt-4o", 4, 3), row(t0, "w1", "gpt-4o", 6, 5)
	c1, c2 := row(t0+120, "w3", "o3", 7, 1), row(t0+120, "w3", "o3", 9, 2)
	d1 := row(t0+3600, "w3", "o3", 7, 1)

	// Segment 5000: two prefixes, the second changes a and adds b.
	write(t, s, segmentBatch(5000, 5100, []aggregate.Row{a1}, []aggregate.Row{h1}))
	write(t, s, segmentBatch(5000, 5200, []aggregate.Row{a2, b1}, []aggregate.Row{h2}))
	got := readChunk(t, s, testTopic, 3, 5)
	want := &aggregate.StoredChunk{
		Segment: 5000,
		Windows: [][]aggregate.StoredRow{slices.Concat(stored(5200, a2), stored(5200, b1)), stored(5200, h2)},
		Progress: aggregate.Progress{FirstOffset: 5000, LastOffset: 5200, Accepted: 5 + 1, Rejected: 2, Duplicates: 20,
			Late: 1, MaxEventTimeMs: (t0 + 90) * 1000, WatermarkMs: (t0 - 510) * 1000},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after segment 5000:\n got %+v\nwant %+v", got, want)
	}

	// The group cap cut the chunk at 5300. A later segment wins even where
	// it has fewer rows; a shorter prefix written after the longer one (a
	// late retry) changes nothing.
	long := segmentBatch(5300, 5500, []aggregate.Row{c2}, nil)
	short := segmentBatch(5300, 5400, []aggregate.Row{c1}, []aggregate.Row{d1})
	write(t, s, short)
	write(t, s, long)
	write(t, s, short)
	want = &aggregate.StoredChunk{
		Segment: 5300,
		Windows: [][]aggregate.StoredRow{stored(5500, c2), stored(5400, d1)},
		Progress: aggregate.Progress{FirstOffset: 5000, LastOffset: 5500, Accepted: 9, Rejected: 2, Duplicates: 50,
			Late: 1, MaxEventTimeMs: (t0 + 90) * 1000, WatermarkMs: (t0 - 510) * 1000},
	}
	if got := readChunk(t, s, testTopic, 3, 5); !reflect.DeepEqual(got, want) {
		t.Errorf("after segment 5300:\n got %+v\nwant %+v", got, want)
	}

	// Rows of other chunks, partitions and topics are not read.
	neighbours := []*aggregate.Batch{rollup(6, 6000, 6010, a1), rollup(4, 4000, 4999, b1)}
	otherPartition := segmentBatch(5600, 5700, []aggregate.Row{a1}, nil)
	otherPartition.Partition = 4
	otherTopic := segmentBatch(5600, 5700, []aggregate.Row{a1}, nil)
	otherTopic.Topic = "other-topic"
	for _, b := range append(neighbours, otherPartition, otherTopic) {
		write(t, s, b)
	}
	if got := readChunk(t, s, testTopic, 3, 5); !reflect.DeepEqual(got, want) {
		t.Errorf("with neighbours written:\n got %+v\nwant %+v", got, want)
	}

	// Windows follow the sink's configuration order.
	reversed, err := New(s.conn, Config{Windows: []aggregate.Window{w1h, w1m}})
	if err != nil {
		t.Fatal(err)
	}
	got = readChunk(t, reversed, testTopic, 3, 5)
	if !reflect.DeepEqual(got.Windows, [][]aggregate.StoredRow{want.Windows[1], want.Windows[0]}) {
		t.Errorf("windows 1h,1m: got %+v", got.Windows)
	}

	// A chunk with no rows and no progress; a chunk with progress only.
	empty := &aggregate.StoredChunk{Segment: -1, Windows: make([][]aggregate.StoredRow, 2),
		Progress: aggregate.Progress{LastOffset: -1}}
	if got := readChunk(t, s, testTopic, 3, 7); !reflect.DeepEqual(got, empty) {
		t.Errorf("empty chunk: got %+v, want %+v", got, empty)
	}
	write(t, s, rollup(8, 8000, 8009))
	got = readChunk(t, s, testTopic, 3, 8)
	if got.Segment != -1 || got.Progress.LastOffset != 8009 || len(got.Windows) != 2 {
		t.Errorf("progress-only chunk: got %+v, want segment -1 and last offset 8009", got)
	}
}
