package partitionlog

import (
	"fmt"
	"testing"

	"github.com/segmentio/kafka-go/protocol/fetch"
)

// benchRecords is the size of the synthetic response: 10 batches of 100.
const benchRecords = 1000

// benchWire is a response of 1000 records of a ~200-byte JSON value, in ten
// batches of a transactional producer with commit markers between them, so
// the filter has work to do.
func benchWire(b *testing.B) []byte {
	b.Helper()
	var batches []batch
	for i := range 10 {
		base := int64(i * 101)
		rs := make([]rec, 100)
		for j := range rs {
			rs[j] = rec{delta: int64(j), key: []byte("ws_0042"), value: fmt.Appendf(nil,
				`{"id":"evt_%026d","timestamp":"2026-11-27T10:15:30.123Z","workspace_id":"ws_0042","model":"gpt-image-1","endpoint":"images.generate","usage":{"input_tokens":1200,"output_tokens":4160}}`,
				base+int64(j))}
		}
		batches = append(batches,
			batch{base: base, pid: 7, transactional: true, records: rs},
			batch{base: base + 100, pid: 7, marker: &commitMarker})
	}
	return recordSetBytes(b, batches...)
}

// BenchmarkFetchDecode measures turning a 1000-record response into a Fetch.
// "filter" is this package's work alone (read-committed filter, copy into the
// arena, gaps), with kafka-go's decoding of the wire bytes outside the timer;
// "wire" adds kafka-go's decoding, the whole client-side cost of a response.
func BenchmarkFetchDecode(b *testing.B) {
	wire := benchWire(b)
	b.Run("filter", func(b *testing.B) {
		d := decoder{blocks: &blockPool{}}
		buf := new(buffers)
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			p := &fetch.ResponsePartition{RecordSet: readRecordSet(b, wire)}
			b.StartTimer()
			decodeBench(b, &d, p, buf)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchRecords), "ns/record")
	})
	b.Run("wire", func(b *testing.B) {
		d := decoder{blocks: &blockPool{}}
		buf := new(buffers)
		b.ReportAllocs()
		for b.Loop() {
			p := &fetch.ResponsePartition{RecordSet: readRecordSet(b, wire)}
			decodeBench(b, &d, p, buf)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchRecords), "ns/record")
	})
}

func decodeBench(b *testing.B, d *decoder, p *fetch.ResponsePartition, buf *buffers) {
	var f Fetch
	if err := d.decode(p, 0, buf, &f); err != nil {
		b.Fatal(err)
	}
	if len(f.Records) != benchRecords || f.Control != 10 {
		b.Fatalf("%d records, %d markers; want %d, 10", len(f.Records), f.Control, benchRecords)
	}
	buf.reset(d.blocks) // as Fetch.Release does
}
