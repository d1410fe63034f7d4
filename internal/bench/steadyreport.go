package bench

import (
	"fmt"
	"io"
	"time"
)

// SteadyResult is one consumer's steady run on one topic: what ClickHouse
// received during the measured window, and how fresh the data was.
type SteadyResult struct {
	// Consumer labels the binary, e.g. "HEAD 0935d31".
	Consumer   string
	Partitions int
	// Window is the measured interval; Events the generated events sent in
	// it (markers not included).
	Window time.Duration
	Events int64
	// Inserts counts INSERT blocks per table in the window (insert probe);
	// Parts the parts INSERTs created per table (block numbers), over every
	// MergeTree table of the database.
	Inserts, Parts map[string]uint64
	// ConsumerCPU and ClickHouseCPU are CPU seconds over the window;
	// ClickHouseIdle the server's rate before the run (other clients).
	ConsumerCPU, ClickHouseCPU, ClickHouseIdle float64
	HasClickHouse                              bool
	// Memory is the consumer's at the end of the window.
	Memory Memory
	// Latencies are the sorted event-to-queryable times of the markers sent
	// in the window; Missing counts those never seen.
	Latencies []time.Duration
	Missing   int
	// Merges is the check that merging takes no block number.
	Merges []MergeCheck
}

func (r *SteadyResult) perSecond(n uint64) float64 { return float64(n) / r.Window.Seconds() }

// steadyTables are the tables with their own columns; "all" sums every table.
var steadyTables = []struct{ name, short string }{
	{"usage_rollup_1m", "1m"}, {"usage_rollup_1h", "1h"}, {"usage_chunks", "chunks"},
}

// sum adds up m's values.
func sum(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

// values are the table's numbers of r, in steadyHeader order after the
// first two columns; NaN-free.
func (r *SteadyResult) values() []float64 {
	v := []float64{float64(r.Events) / r.Window.Seconds()}
	for _, t := range steadyTables {
		v = append(v, r.perSecond(r.Inserts[t.name]))
	}
	v = append(v, r.perSecond(sum(r.Inserts)))
	for _, t := range steadyTables {
		v = append(v, r.perSecond(r.Parts[t.name]))
	}
	v = append(v, r.perSecond(sum(r.Parts)),
		Percentile(r.Latencies, 0.5).Seconds(), Percentile(r.Latencies, 0.99).Seconds(),
		r.ConsumerCPU/r.Window.Seconds(), r.ClickHouseCPU/r.Window.Seconds(), float64(r.Memory.RSS)/(1<<20))
	return v
}

var steadyHeader = []string{"consumer", "P", "events/s",
	"INSERTs/s 1m", "INSERTs/s 1h", "INSERTs/s chunks", "INSERTs/s all",
	"parts/s 1m", "parts/s 1h", "parts/s chunks", "parts/s all",
	"fresh p50 s", "fresh p99 s", "consumer CPU s/s", "ClickHouse CPU s/s", "RSS MiB", "markers seen"}

// WriteSteadyTable writes the steady results as one markdown table: a row per
// consumer and partition count and, per partition count with two consumers,
// the last one's values divided by the first one's.
func WriteSteadyTable(w io.Writer, results []SteadyResult) error {
	t := newMarkdownTable(steadyHeader)
	formats := []string{"%.1f", "%.2f", "%.2f", "%.2f", "%.2f", "%.2f", "%.2f", "%.2f", "%.2f", "%.2f", "%.2f", "%.3f", "%.3f", "%.0f"}
	for i := range results {
		r := &results[i]
		cells := []string{r.Consumer, fmt.Sprint(r.Partitions)}
		for j, v := range r.values() {
			cells = append(cells, fmt.Sprintf(formats[j], v))
		}
		if !r.HasClickHouse {
			cells[len(cells)-2] = "—"
		}
		cells = append(cells, fmt.Sprintf("%d/%d", len(r.Latencies), len(r.Latencies)+r.Missing))
		t.row(cells...)
		if i == 0 || results[i-1].Partitions != r.Partitions {
			continue
		}
		base := &results[i-1]
		cells = []string{"*" + r.Consumer + " ÷ " + base.Consumer + "*", fmt.Sprint(r.Partitions)}
		bv := base.values()
		for j, v := range r.values() {
			if bv[j] == 0 {
				cells = append(cells, "—")
				continue
			}
			cells = append(cells, fmt.Sprintf("%.2f×", v/bv[j]))
		}
		if !r.HasClickHouse || !base.HasClickHouse {
			cells[len(cells)-2] = "—"
		}
		cells = append(cells, "")
		t.row(cells...)
	}
	return t.writeTo(w)
}
