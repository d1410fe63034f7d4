package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/bench"
	"github.com/usage-rollup/usage-rollup/internal/loadgen"
)

// The reports: the results table on stdout, and a markdown file per run with
// the machine, the settings, the same table and the details of each result.

// publish prints the results table that table writes on stdout, then has
// report write the report at path with the table and ClickHouse's version.
func publish(ctx context.Context, ch *bench.ClickHouse, stdout io.Writer, path, logDir string,
	table func(io.Writer) error, report func(chVersion string, table []byte) error,
) error {
	var buf bytes.Buffer
	if err := table(&buf); err != nil {
		return err
	}
	if _, err := stdout.Write(buf.Bytes()); err != nil {
		return err
	}
	chVersion, err := ch.Version(ctx)
	if err != nil {
		return err
	}
	if err := report(chVersion, buf.Bytes()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nresults: %s (logs in %s)\n", path, logDir)
	return nil
}

// writeReportHead writes the title and the machine line both reports start with.
func writeReportHead(b *strings.Builder, title, runID string, cfg config, chVersion string) {
	fmt.Fprintf(b, "# %s, run %s\n\n", title, runID)
	kafka := cfg.kafkaVersion
	if kafka == "" {
		kafka = "unknown"
	}
	fmt.Fprintf(b, "- machine: %d CPUs, %s; Kafka %s, ClickHouse %s, %s\n", runtime.NumCPU(), memTotal(), kafka, chVersion, runtime.Version())
}

// writeReport writes the batch mode's report: the stream, the preloads, the
// settings, the table and each result's details and differences.
func writeReport(path string, cfg config, runID, chVersion string, gen loadgen.Config, exp *loadgen.Expected,
	preloads []string, table []byte, results []bench.Result,
) error {
	var b strings.Builder
	writeReportHead(&b, "End-to-end benchmark", runID, cfg, chVersion)
	fmt.Fprintf(&b, "- stream: %d events, seed %d, event time %s .. %s; %d workspaces, %d workspace/model pairs; "+
		"requests %d, total_tokens %d\n", exp.Sent, gen.Seed, exp.MinEventTime.Format(time.RFC3339),
		exp.MaxEventTime.Format(time.RFC3339), len(exp.ByWorkspaceModel), len(exp.Rows()), exp.Overall.Requests, exp.Overall.TotalTokens)
	fmt.Fprintf(&b, "- preload: %s\n", strings.Join(preloads, ", "))
	fmt.Fprintf(&b, "- settings: consumer env %q (else the service's defaults); kafka_num_consumers %d; raw batch %d rows; "+
		"query runs %d (median); usage-rollup compacted before measuring (-compact): %t\n\n", cfg.consumerEnv, cfg.engineConsumers, cfg.rawBatch, cfg.queryRuns, cfg.compact)
	b.Write(table)
	b.WriteString("\nCPU is per million events; rows/group is rows stored (no FINAL) / distinct (window, dimensions) groups; " +
		"ratios are usage-rollup's value divided by the other pipeline's.\n")
	for _, r := range results {
		fmt.Fprintf(&b, "\n## %s, P=%d\n\nelapsed %s, consumer CPU %.2f s, ClickHouse CPU %.2f s "+
			"(of which other clients, at the rate measured just before: about %.2f s)\n\n",
			r.Pipeline, r.Partitions, r.Elapsed.Round(time.Millisecond), r.ConsumerCPU, r.ClickHouseCPU,
			r.ClickHouseIdle*r.Elapsed.Seconds())
		if r.HasMemory {
			fmt.Fprintf(&b, "- memory at catch-up: RSS %.1f MiB, peak RSS %.1f MiB", float64(r.Memory.RSS)/(1<<20), float64(r.Memory.Peak)/(1<<20))
			for _, name := range memoryGauges {
				if v, ok := r.Gauges[name]; ok {
					fmt.Fprintf(&b, "; %s %.0f at catch-up, at most %.0f", name, v, r.MaxGauges[name])
				}
			}
			if r.Gauges != nil {
				b.WriteString(" (scraped every second)")
			}
			b.WriteString("\n")
		}
		for _, w := range r.Windows {
			fmt.Fprintf(&b, "- %s: %d rows, %d groups, requests %d, total_tokens %d, analyst query median %s\n",
				w.Name, w.Rows, w.Groups, w.Requests, w.TotalTokens, w.Query.Round(time.Microsecond))
		}
		for i, p := range r.Problems {
			if i == 20 {
				fmt.Fprintf(&b, "- ... %d more differences\n", len(r.Problems)-i)
				break
			}
			fmt.Fprintf(&b, "- DIFFERENCE %s\n", p)
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// writeSteadyReport writes the steady mode's report: the consumers, the
// stream, the table and each result's INSERTs, parts, freshness and merges.
func writeSteadyReport(path string, cfg config, consumers []steadyConsumer, runID, chVersion string, table []byte, results []bench.SteadyResult) error {
	var b strings.Builder
	writeReportHead(&b, "Steady benchmark", runID, cfg, chVersion)
	for _, c := range consumers {
		fmt.Fprintf(&b, "- consumer %q: %s\n", c.label, c.binary)
	}
	fmt.Fprintf(&b, "- stream: %.0f generated events/s (clean mix, seed %d, keyed by event id) plus one marker event per %s; "+
		"warm-up %s, window %s; consumer env %q (else the service's defaults)\n\n",
		cfg.rate, cfg.seed, markerEvery, cfg.warmup, cfg.duration, cfg.consumerEnv)
	b.Write(table)
	b.WriteString("\nINSERTs: blocks the insert probe (a materialized view per table) saw in the window; parts: growth of " +
		"max(max_block_number) in system.parts; all: every table the consumer writes. fresh: marker send to first " +
		"query of " + freshnessView + " returning it (polled every 100 ms).\n")
	for _, r := range results {
		fmt.Fprintf(&b, "\n## %s, P=%d\n\nwindow %s, %d events; ClickHouse CPU %.2f s (other clients, at the rate measured before: about %.2f s); "+
			"consumer RSS %.1f MiB (peak %.1f MiB)\n\n", r.Consumer, r.Partitions, r.Window.Round(time.Millisecond), r.Events,
			r.ClickHouseCPU, r.ClickHouseIdle*r.Window.Seconds(), float64(r.Memory.RSS)/(1<<20), float64(r.Memory.Peak)/(1<<20))
		tables := make([]string, 0, len(r.Parts))
		for t := range r.Parts {
			tables = append(tables, t)
		}
		for t := range r.Inserts {
			if !slices.Contains(tables, t) {
				tables = append(tables, t)
			}
		}
		slices.Sort(tables)
		for _, t := range tables {
			fmt.Fprintf(&b, "- %s: %d INSERTs, %d parts\n", t, r.Inserts[t], r.Parts[t])
		}
		if len(r.Latencies) > 0 {
			fmt.Fprintf(&b, "- freshness: %d markers, min %s, p50 %s, p90 %s, p99 %s, max %s; %d not seen\n", len(r.Latencies),
				r.Latencies[0].Round(time.Millisecond), bench.Percentile(r.Latencies, 0.5).Round(time.Millisecond),
				bench.Percentile(r.Latencies, 0.9).Round(time.Millisecond), bench.Percentile(r.Latencies, 0.99).Round(time.Millisecond),
				r.Latencies[len(r.Latencies)-1].Round(time.Millisecond), r.Missing)
		}
		for _, m := range r.Merges {
			fmt.Fprintf(&b, "- %s after the run: %d INSERTs, highest block number %d, %d active parts; OPTIMIZE FINAL: "+
				"active parts %d -> %d, highest block number %d -> %d (%s)\n", m.Table, m.Inserts, m.BlocksBefore, m.PartsBefore,
				m.PartsBefore, m.PartsAfter, m.BlocksBefore, m.BlocksAfter, map[bool]string{true: "unchanged", false: "**moved**"}[m.OK()])
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// memTotal reads MemTotal from /proc/meminfo, e.g. "23.4 GiB RAM".
func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "memory unknown"
	}
	var kb int64
	for _, line := range strings.Split(string(b), "\n") {
		if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
			return fmt.Sprintf("%.1f GiB RAM", float64(kb)/(1<<20))
		}
	}
	return "memory unknown"
}
