package bench

import (
	"fmt"
	"io"
	"time"
)

// Pipeline names, as the result table shows them.
const (
	PipelineRollup = "usage-rollup"
	PipelineEngine = "CH Kafka engine"
	PipelineRaw    = "raw rows"
)

// Result is one pipeline's run on one topic.
type Result struct {
	Pipeline   string
	Partitions int
	Events     int64
	Elapsed    time.Duration
	// ConsumerCPU is the CPU seconds of the consuming process outside
	// ClickHouse; HasConsumer is false for the Kafka engine, which has none.
	ConsumerCPU float64
	HasConsumer bool
	// ClickHouseCPU is the CPU seconds of the ClickHouse server over the run;
	// HasClickHouse is false when its pid was not given.
	ClickHouseCPU float64
	HasClickHouse bool
	// ClickHouseIdle is the server's CPU rate (CPU-seconds per second) just
	// before the run: other clients of a shared server, included in
	// ClickHouseCPU.
	ClickHouseIdle float64
	Windows        []WindowResult
	// WantRequests is the generator's request count, for the exact column.
	WantRequests uint64
	DiskBytes    uint64
	// Problems lists every difference from the generator's expected totals.
	Problems []string
	// Memory is the consuming process's at catch-up; HasMemory is false
	// for the Kafka engine. Gauges are the consumer's memory gauges at
	// catch-up and MaxGauges the most each reached while it ran (scraped
	// every second), by metric name; nil when not scraped.
	Memory            Memory
	HasMemory         bool
	Gauges, MaxGauges map[string]float64
}

func (r *Result) rate() float64 { return float64(r.Events) / r.Elapsed.Seconds() }

// perMillion scales CPU seconds to seconds per million events.
func (r *Result) perMillion(sec float64) float64 { return sec * 1e6 / float64(r.Events) }

func (r *Result) totalCPU() (float64, bool) {
	if !r.HasClickHouse {
		return 0, false
	}
	return r.perMillion(r.ConsumerCPU + r.ClickHouseCPU), true
}

func (r *Result) window(name string) (WindowResult, bool) {
	for _, w := range r.Windows {
		if w.Name == name {
			return w, true
		}
	}
	return WindowResult{}, false
}

var header = []string{"pipeline", "P", "events/s", "CPU s/1M consumer", "CPU s/1M ClickHouse", "CPU s/1M total",
	"rows/group 1m", "rows/group 1h", "query 1m ms", "query 1h ms", "disk MB", "exact"}

// WriteTable writes results as one markdown table: a row per pipeline and
// partition count, then, per partition count, usage-rollup's ratio to each
// other pipeline (for events/s higher is better, for the rest lower).
func WriteTable(w io.Writer, results []Result) error {
	t := newMarkdownTable(header)
	for i := range results {
		r := &results[i]
		t.row(r.cells()...)
		last := i == len(results)-1 || results[i+1].Partitions != r.Partitions
		if !last {
			continue
		}
		base := find(results, PipelineRollup, r.Partitions)
		if base == nil {
			continue
		}
		for _, other := range []string{PipelineEngine, PipelineRaw} {
			if o := find(results, other, r.Partitions); o != nil {
				t.row(ratioCells(base, o)...)
			}
		}
	}
	return t.writeTo(w)
}

func find(results []Result, pipeline string, partitions int) *Result {
	for i := range results {
		if results[i].Pipeline == pipeline && results[i].Partitions == partitions {
			return &results[i]
		}
	}
	return nil
}

func (r *Result) cells() []string {
	na := "—"
	consumer, ch, total := na, na, na
	if r.HasConsumer {
		consumer = fmt.Sprintf("%.2f", r.perMillion(r.ConsumerCPU))
	}
	if r.HasClickHouse {
		ch = fmt.Sprintf("%.2f", r.perMillion(r.ClickHouseCPU))
	}
	if t, ok := r.totalCPU(); ok {
		total = fmt.Sprintf("%.2f", t)
	}
	cells := []string{r.Pipeline, fmt.Sprint(r.Partitions), fmt.Sprintf("%.0f", r.rate()), consumer, ch, total}
	for _, name := range []string{"1m", "1h"} {
		w, ok := r.window(name)
		if !ok {
			cells = append(cells, na)
			continue
		}
		cells = append(cells, fmt.Sprintf("%.2f (%d / %d)", float64(w.Rows)/float64(max(w.Groups, 1)), w.Rows, w.Groups))
	}
	for _, name := range []string{"1m", "1h"} {
		w, ok := r.window(name)
		if !ok {
			cells = append(cells, na)
			continue
		}
		cells = append(cells, fmt.Sprintf("%.1f", float64(w.Query.Microseconds())/1000))
	}
	exact := "yes"
	if len(r.Problems) > 0 {
		exact = "**no**:"
		for _, w := range r.Windows {
			if d := int64(w.Requests) - int64(r.WantRequests); d != 0 {
				exact += fmt.Sprintf(" %s %+d req", w.Name, d)
			}
		}
		exact += fmt.Sprintf(" (%d differences)", len(r.Problems))
	}
	return append(cells, fmt.Sprintf("%.1f", float64(r.DiskBytes)/1e6), exact)
}

// ratioCells compares a with b: a's value divided by b's, "×" suffixed.
func ratioCells(a, b *Result) []string {
	na := "—"
	ratio := func(x, y float64, ok bool) string {
		if !ok || y == 0 {
			return na
		}
		if q := x / y; q < 0.01 {
			return fmt.Sprintf("%.2g×", q) // two significant digits, not 0.00×
		}
		return fmt.Sprintf("%.2f×", x/y)
	}
	cells := []string{"*" + a.Pipeline + " ÷ " + b.Pipeline + "*", fmt.Sprint(a.Partitions),
		ratio(a.rate(), b.rate(), true), na,
		ratio(a.ClickHouseCPU/float64(a.Events), b.ClickHouseCPU/float64(b.Events), a.HasClickHouse && b.HasClickHouse)}
	at, aok := a.totalCPU()
	bt, bok := b.totalCPU()
	cells = append(cells, ratio(at, bt, aok && bok))
	for _, name := range []string{"1m", "1h"} {
		aw, aok := a.window(name)
		bw, bok := b.window(name)
		cells = append(cells, ratio(float64(aw.Rows)/float64(max(aw.Groups, 1)), float64(bw.Rows)/float64(max(bw.Groups, 1)), aok && bok))
	}
	for _, name := range []string{"1m", "1h"} {
		aw, aok := a.window(name)
		bw, bok := b.window(name)
		cells = append(cells, ratio(aw.Query.Seconds(), bw.Query.Seconds(), aok && bok))
	}
	return append(cells, ratio(float64(a.DiskBytes), float64(b.DiskBytes), true), "")
}
