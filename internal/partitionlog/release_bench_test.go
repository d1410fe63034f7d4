package partitionlog

import (
	"fmt"
	"testing"

	"github.com/segmentio/kafka-go/protocol/fetch"
)

// BenchmarkFetchRelease decodes and releases a response the size of a full
// default fetch (16 MiB: 64 batches of 1000 records of ~250 bytes), as a
// partition catching up on a backlog does, fetch after fetch.
func BenchmarkFetchRelease(b *testing.B) {
	const batches, perBatch = 64, 1000
	var bs []batch
	for i := range batches {
		base := int64(i * perBatch)
		rs := make([]rec, perBatch)
		for j := range rs {
			rs[j] = rec{delta: int64(j), key: []byte("ws_0042"), value: fmt.Appendf(nil,
				`{"id":"evt_%026d","timestamp":"2026-11-27T10:15:30.123Z","workspace_id":"ws_0042","project_id":"proj_web","api_key_id":"key_1","model":"gpt-image-1","endpoint":"images.generate","usage":{"input_tokens":1200,"output_tokens":4160}}`,
				base+int64(j))}
		}
		bs = append(bs, batch{base: base, records: rs})
	}
	wire := recordSetBytes(b, bs...)
	// Only what decoding and releasing use.
	r := &Reader{dec: decoder{blocks: &blockPool{}}}
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		p := &fetch.ResponsePartition{RecordSet: readRecordSet(b, wire)}
		b.StartTimer()
		buf := r.takeBuffers()
		var f Fetch
		if err := r.dec.decode(p, 0, buf, &f); err != nil {
			b.Fatal(err)
		}
		if len(f.Records) != batches*perBatch {
			b.Fatalf("%d records", len(f.Records))
		}
		r.putBuffers(buf)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batches*perBatch), "ns/record")
}
