package partitionlog

import (
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/fetch"
)

// recsAt returns records of a batch at base with the given offsets, values
// "v<offset>".
func recsAt(base int64, offsets ...int64) []rec {
	rs := make([]rec, len(offsets))
	for i, o := range offsets {
		rs[i] = rec{delta: o - base, key: []byte("k"), value: []byte(value(o))}
	}
	return rs
}

func delta(d int32) *int32 { return &d }

// decodeOne runs the decoder over p for a fetch at offset.
func decodeOne(t testing.TB, p *fetch.ResponsePartition, offset int64) *Fetch {
	t.Helper()
	var d decoder
	f := &Fetch{}
	if err := d.decode(p, offset, new(buffers), f); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return f
}

func TestDecode(t *testing.T) {
	const p1, p2 = 1001, 1002
	tests := []struct {
		name    string
		part    partition
		offset  int64
		want    []int64 // offsets of the records returned
		gaps    []Range
		next    int64
		aborted int
		control int
	}{
		{
			name: "aborted transaction skipped, committed kept, non-transactional interleaved",
			part: partition{
				aborted: []fetch.ResponseTransaction{{ProducerID: p1, FirstOffset: 0}},
				batches: []batch{
					txn(p1, 0, 3),
					plain(3, 2),
					txn(p2, 5, 2),
					abortAt(p1, 7),
					commitAt(p2, 8),
					{base: 9, pid: 77, records: data(9, 1)}, // idempotent, not transactional
				},
			},
			want: []int64{3, 4, 5, 6, 9}, next: 10, aborted: 3, control: 2,
		},
		{
			name: "a producer's next transaction after its abort marker is kept",
			part: partition{
				aborted: []fetch.ResponseTransaction{{ProducerID: p1, FirstOffset: 0}},
				batches: []batch{
					txn(p1, 0, 2),
					abortAt(p1, 2),
					txn(p1, 3, 2),
					commitAt(p1, 5),
				},
			},
			want: []int64{3, 4}, next: 6, aborted: 2, control: 2,
		},
		{
			name: "an aborted transaction listed later does not hide earlier batches of its producer",
			part: partition{
				aborted: []fetch.ResponseTransaction{{ProducerID: p1, FirstOffset: 3}},
				batches: []batch{
					txn(p1, 0, 2),
					commitAt(p1, 2),
					txn(p1, 3, 2),
					abortAt(p1, 5),
				},
			},
			want: []int64{0, 1}, next: 6, aborted: 2, control: 2,
		},
		{
			name: "aborted transaction that began before the fetch offset",
			part: partition{
				aborted: []fetch.ResponseTransaction{{ProducerID: p1, FirstOffset: 0}},
				batches: []batch{
					{base: 0, pid: p1, transactional: true, gzip: true, records: data(0, 5)},
					abortAt(p1, 5),
					plain(6, 1),
				},
			},
			offset: 2,
			want:   []int64{6}, next: 7, aborted: 3, control: 1,
		},
		{
			name: "records of a compressed batch before the fetch offset are dropped",
			part: partition{batches: []batch{
				{base: 0, gzip: true, records: data(0, 10)},
				plain(10, 2),
			}},
			offset: 4,
			want:   []int64{4, 5, 6, 7, 8, 9, 10, 11}, next: 12,
		},
		{
			name: "holes inside and between batches are gaps",
			part: partition{batches: []batch{
				{base: 10, lastDelta: delta(7), records: recsAt(10, 10, 11, 14, 15)},
				{base: 18, records: recsAt(18, 18, 19)},
			}},
			offset: 10,
			want:   []int64{10, 11, 14, 15, 18, 19},
			gaps:   []Range{{12, 14}, {16, 18}},
			next:   20,
		},
		{
			name: "first record after the fetch offset",
			part: partition{batches: []batch{
				plain(8, 2),
			}},
			offset: 5,
			want:   []int64{8, 9},
			gaps:   []Range{{5, 8}},
			next:   10,
		},
		{
			name: "control and aborted records are present, not gaps",
			part: partition{
				aborted: []fetch.ResponseTransaction{{ProducerID: p1, FirstOffset: 4}},
				batches: []batch{
					txn(p1, 4, 2),
					abortAt(p1, 6),
					plain(9, 1),
				},
			},
			offset: 4,
			want:   []int64{9},
			gaps:   []Range{{7, 9}},
			next:   10, aborted: 2, control: 1,
		},
		{
			name: "an empty compacted batch is stepped over when a batch follows",
			part: partition{batches: []batch{
				{base: 5, lastDelta: delta(3)},
				plain(9, 1),
			}},
			offset: 5,
			want:   []int64{9},
			gaps:   []Range{{5, 9}},
			next:   10,
		},
		{
			name: "a batch whose tail was compacted away is stepped over one offset",
			part: partition{batches: []batch{
				{base: 0, lastDelta: delta(9), records: data(0, 3)},
			}},
			offset: 3,
			gaps:   []Range{{3, 4}},
			next:   4,
		},
		{
			name: "a lone empty batch after the fetch offset is stepped over to its base",
			part: partition{batches: []batch{
				{base: 5, lastDelta: delta(2)},
			}},
			offset: 3,
			gaps:   []Range{{3, 6}},
			next:   6,
		},
		{
			name:   "no batch: Next stays",
			part:   partition{},
			offset: 3,
			next:   3,
		},
		{
			name: "only markers",
			part: partition{batches: []batch{
				commitAt(p1, 3),
			}},
			offset: 3,
			next:   4, control: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := decodeOne(t, tc.part.response(t), tc.offset)
			var got []int64
			for _, r := range f.Records {
				got = append(got, r.Offset)
				if string(r.Value) != value(r.Offset) || string(r.Key) != "k" {
					t.Errorf("record %d: key %q value %q, want k, %s", r.Offset, r.Key, r.Value, value(r.Offset))
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("records %v, want %v", got, tc.want)
			}
			if !slices.Equal(f.Gaps, tc.gaps) {
				t.Errorf("gaps %v, want %v", f.Gaps, tc.gaps)
			}
			if f.Next != tc.next || f.Aborted != tc.aborted || f.Control != tc.control {
				t.Errorf("next %d aborted %d control %d, want %d %d %d",
					f.Next, f.Aborted, f.Control, tc.next, tc.aborted, tc.control)
			}
		})
	}
}

func TestDecodeKeyValueAndTime(t *testing.T) {
	p := partition{batches: []batch{{base: 0, records: []rec{
		{delta: 0, key: nil, value: []byte("a")},
		{delta: 1, key: []byte{}, value: nil},
		{delta: 2, key: []byte("key"), value: []byte("value")},
	}}}}
	f := decodeOne(t, p.response(t), 0)
	if len(f.Records) != 3 {
		t.Fatalf("%d records, want 3", len(f.Records))
	}
	r0, r1, r2 := f.Records[0], f.Records[1], f.Records[2]
	if r0.Key != nil || string(r0.Value) != "a" {
		t.Errorf("record 0: key %v value %q, want nil key", r0.Key, r0.Value)
	}
	if r1.Key == nil || len(r1.Key) != 0 || r1.Value != nil {
		t.Errorf("record 1: key %v value %v, want empty key and nil value", r1.Key, r1.Value)
	}
	if string(r2.Key) != "key" || string(r2.Value) != "value" {
		t.Errorf("record 2: key %q value %q", r2.Key, r2.Value)
	}
	if cap(r2.Key) != len(r2.Key) {
		t.Errorf("key capacity %d exceeds its length: an append would overwrite the value", cap(r2.Key))
	}
	for i, r := range f.Records {
		if want := testBaseTime.Add(time.Duration(i) * time.Millisecond); !r.Time.Equal(want) {
			t.Errorf("record %d: time %v, want %v", i, r.Time, want)
		}
	}
}

// TestDecodeBuiltBatches feeds batches built from kafka-go's types rather
// than wire bytes, as a response holding a single batch outside a
// RecordStream.
func TestDecodeBuiltBatches(t *testing.T) {
	rs := &protocol.RecordStream{Records: []protocol.RecordReader{
		&protocol.RecordBatch{
			Attributes: protocol.Transactional, ProducerID: 5, BaseOffset: 0,
			Records: protocol.NewRecordReader(protocol.Record{Offset: 0, Value: protocol.NewBytes([]byte("x"))}),
		},
		protocol.NewControlBatch(protocol.ControlRecord{Offset: 1, Type: controlAbort}),
		&protocol.RecordBatch{
			BaseOffset: 2,
			Records:    protocol.NewRecordReader(protocol.Record{Offset: 2, Value: protocol.NewBytes([]byte("y"))}),
		},
	}}
	// NewControlBatch leaves the producer id and base offset unset.
	cb := rs.Records[1].(*protocol.ControlBatch)
	cb.ProducerID, cb.BaseOffset = 5, 1
	p := &fetch.ResponsePartition{
		AbortedTransactions: []fetch.ResponseTransaction{{ProducerID: 5, FirstOffset: 0}},
		RecordSet:           protocol.RecordSet{Records: rs},
	}
	f := decodeOne(t, p, 0)
	if len(f.Records) != 1 || f.Records[0].Offset != 2 || string(f.Records[0].Value) != "y" {
		t.Fatalf("records %+v, want only offset 2", f.Records)
	}
	if f.Aborted != 1 || f.Control != 1 || f.Next != 3 {
		t.Errorf("aborted %d control %d next %d, want 1 1 3", f.Aborted, f.Control, f.Next)
	}
}
