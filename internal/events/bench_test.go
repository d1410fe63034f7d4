package events_test

import (
	"testing"

	"github.com/usage-rollup/usage-rollup/internal/events"
)

// BenchmarkDecode measures the per-event path on valid payloads of each
// style. It must report 0 allocs/op: the consumer decodes every message.
func BenchmarkDecode(b *testing.B) {
	for _, name := range []string{"snake", "camel", "chat"} {
		payload := readFile(b, goldenDir+"/valid/"+name+".json")
		b.Run(name, func(b *testing.B) {
			d := events.NewDecoder(events.DefaultConfig())
			var ev events.Event
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				if err := d.Decode(payload, recordTime, &ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDecodeDoesNotAllocate enforces the benchmark's 0 allocs/op in the
// ordinary test run, so a regression fails CI rather than a dashboard.
func TestDecodeDoesNotAllocate(t *testing.T) {
	for _, name := range []string{"snake", "camel", "chat", "epoch_ms", "mixed_same_values", "escapes", "inconsistent", "unknown_fields"} {
		payload := readFile(t, goldenDir+"/valid/"+name+".json")
		d := events.NewDecoder(events.DefaultConfig())
		var ev events.Event
		allocs := testing.AllocsPerRun(100, func() {
			if err := d.Decode(payload, recordTime, &ev); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocs per Decode, want 0", name, allocs)
		}
	}
}
