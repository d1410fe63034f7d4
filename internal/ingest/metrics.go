package ingest

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/usage-rollup/usage-rollup/internal/events"
)

// metrics are the Kafka loop's Prometheus series. Labels are bounded: the
// rejection reason and error class are closed sets, windows are configured,
// and partition labels exist only for partitions assigned to this process
// (deleted when a generation ends). No tenant ids.
type metrics struct {
	consumed      prometheus.Counter
	bytes         prometheus.Counter
	accepted      prometheus.Counter
	duplicates    prometheus.Counter
	late          prometheus.Counter
	rejected      *prometheus.CounterVec
	deadLetters   prometheus.Counter
	deadLetterErr *prometheus.CounterVec
	dlTruncated   prometheus.Counter
	dlDropped     prometheus.Counter
	writes        prometheus.Counter
	inserts       prometheus.Counter
	rows          *prometheus.CounterVec
	writeErrors   *prometheus.CounterVec
	writeTime     prometheus.Histogram
	commits       prometheus.Counter
	commitErrs    prometheus.Counter
	commitTime    prometheus.Histogram
	chunks        prometheus.Counter
	segments      prometheus.Counter
	sealsRead     prometheus.Counter
	sealsWritten  prometheus.Counter
	sealErrors    prometheus.Counter
	gapOffsets    prometheus.Counter
	carried       prometheus.Counter
	outOfRange    *prometheus.GaugeVec
	rebalances    prometheus.Counter
	assigned      prometheus.Gauge
	groups        prometheus.Gauge
	stateBytes    prometheus.Gauge
	lag           *prometheus.GaugeVec
	watermark     *prometheus.GaugeVec
	closed        prometheus.Gauge
	freshness     prometheus.Gauge
	lastProgress  prometheus.Gauge
	ready         prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, windows []string) *metrics {
	f := promauto.With(reg)
	counter := func(name, help string) prometheus.Counter {
		return f.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	gauge := func(name, help string) prometheus.Gauge {
		return f.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	}
	m := &metrics{
		consumed:      counter("usage_rollup_events_consumed_total", "Kafka records read (accepted, rejected and duplicates; warm-up reads excluded)."),
		bytes:         counter("usage_rollup_consumed_bytes_total", "Bytes of Kafka record values read."),
		accepted:      counter("usage_rollup_events_accepted_total", "Events decoded and counted into the rollups."),
		duplicates:    counter("usage_rollup_events_duplicate_total", "Valid events dropped because their id was already counted within the dedup horizon."),
		late:          counter("usage_rollup_events_late_total", "Accepted events older than the partition watermark; counted in their true window."),
		deadLetters:   counter("usage_rollup_dead_letters_total", "Rejected messages written to the dead-letter topic (truncated ones included)."),
		dlTruncated:   counter("usage_rollup_dead_letters_truncated_total", "Rejected messages the dead-letter topic refused whole (too large, invalid), written truncated to their first 4 KB with usage-rollup-truncated headers."),
		dlDropped:     counter("usage_rollup_dead_letters_dropped_total", "Rejected messages the dead-letter topic refused even truncated: no dead letter written; usage_rejected keeps their row."),
		deadLetterErr: f.NewCounterVec(prometheus.CounterOpts{Name: "usage_rollup_dead_letter_errors_total", Help: "Failed dead-letter writes, by class: transient (attempt retried: broker unavailable, or a batch too large retried message by message) or permanent (a message refused for good, then written truncated or dropped)."}, []string{"class"}),
		writes:        counter("usage_rollup_batches_written_total", "Batches written to ClickHouse."),
		inserts:       counter("usage_rollup_insert_rounds_total", "Coalesced writes to ClickHouse: one INSERT per table for the batches of all partitions that flushed together."),
		commits:       counter("usage_rollup_offset_commits_total", "Offset commits sent after a durable write."),
		commitErrs:    counter("usage_rollup_offset_commit_errors_total", "Offset commits that failed (harmless: the commit is only a resume hint)."),
		chunks:        counter("usage_rollup_chunks_completed_total", "Chunks written completely (each partition's log is cut into CHUNK_SIZE offsets)."),
		segments:      counter("usage_rollup_segments_cut_total", "Segments cut because a partition reached MAX_GROUPS_PER_PARTITION."),
		sealsRead:     counter("usage_rollup_seal_records_total", "Seal records read from the topic: each ends its partition's current segment, so that compaction can fold it."),
		sealsWritten:  counter("usage_rollup_seals_written_total", "Seal records this process wrote to idle partitions (SEAL_IDLE_AFTER)."),
		sealErrors:    counter("usage_rollup_seal_errors_total", "Seal records that could not be written (retried after SEAL_IDLE_AFTER; compaction of the partition's newest segment waits)."),
		gapOffsets:    counter("usage_rollup_log_gap_offsets_total", "Offsets found missing from the log while reading (retention, DeleteRecords or compaction removed them)."),
		carried:       counter("usage_rollup_chunks_carried_total", "Chunks the log could no longer reproduce in full, continued from their stored rows."),
		rebalances:    counter("usage_rollup_rebalances_total", "Consumer group generations joined."),
		assigned:      gauge("usage_rollup_assigned_partitions", "Partitions assigned in the current generation."),
		groups:        gauge("usage_rollup_groups_in_memory", "Rollup groups held in memory for open chunks, over all partitions and windows."),
		stateBytes:    gauge("usage_rollup_state_bytes", "Estimated heap bytes of the in-memory aggregation state."),
		closed:        gauge("usage_rollup_closed_through_timestamp_seconds", "Oldest closed_through over the assigned partitions: windows ending before it are complete."),
		freshness:     gauge("usage_rollup_freshness_seconds", "Seconds between now and the newest event time written to ClickHouse."),
		lastProgress:  gauge("usage_rollup_last_progress_timestamp_seconds", "Time of the last durable write and commit."),
		ready:         gauge("usage_rollup_ready", "1 once the consumer joined its group; /readyz also requires a ClickHouse ping."),
		rejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "usage_rollup_events_rejected_total", Help: "Messages rejected by the decoder, by reason.",
		}, []string{"reason"}),
		rows: f.NewCounterVec(prometheus.CounterOpts{
			Name: "usage_rollup_rows_written_total", Help: "Rollup rows written to ClickHouse, by window.",
		}, []string{"window"}),
		writeErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "usage_rollup_batch_write_errors_total", Help: "Failed batch write attempts (each is retried), by class: transient or permanent.",
		}, []string{"class"}),
		writeTime: f.NewHistogram(prometheus.HistogramOpts{
			Name: "usage_rollup_batch_write_duration_seconds", Help: "Duration of successful batch writes.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		commitTime: f.NewHistogram(prometheus.HistogramOpts{
			Name: "usage_rollup_offset_commit_duration_seconds", Help: "Duration of offset commits.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 12),
		}),
		lag: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "usage_rollup_consumer_lag", Help: "Records between the log end and the last durable write, per assigned partition.",
		}, []string{"partition"}),
		outOfRange: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "usage_rollup_offset_out_of_range",
			Help: "1 while an assigned partition's committed offset lies outside its log (past the end: topic re-created or log truncated); the partition is not consumed until an operator acts.",
		}, []string{"partition"}),
		watermark: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "usage_rollup_watermark_timestamp_seconds", Help: "Event-time watermark of the last durable write, per assigned partition.",
		}, []string{"partition"}),
	}
	// Expose zeros so rate() and absent-series alerts work from the start.
	for _, r := range events.Reasons {
		m.rejected.WithLabelValues(string(r))
	}
	for _, w := range windows {
		m.rows.WithLabelValues(w)
	}
	for _, class := range []string{"transient", "permanent"} {
		m.writeErrors.WithLabelValues(class)
	}
	for _, class := range []string{classTransient, classPermanent} {
		m.deadLetterErr.WithLabelValues(class)
	}
	return m
}
