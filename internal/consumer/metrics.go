package consumer

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/usage-rollup/usage-rollup/internal/events"
)

// metrics are the Kafka loop's Prometheus series. Labels are bounded: the
// rejection reason is a closed set and partitions are never labels here.
type metrics struct {
	consumed    prometheus.Counter
	bytes       prometheus.Counter
	accepted    prometheus.Counter
	duplicates  prometheus.Counter
	rejected    *prometheus.CounterVec
	writes      prometheus.Counter
	writeErrors prometheus.Counter
	writeTime   prometheus.Histogram
	commits     prometheus.Counter
	commitErrs  prometheus.Counter
	rebalances  prometheus.Counter
	assigned    prometheus.Gauge
	groups      prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		consumed: f.NewCounter(prometheus.CounterOpts{
			Name: "usage_rollup_events_consumed_total", Help: "Kafka records read (accepted, rejected and duplicates; warm-up reads excluded).",
		}),
		bytes: f.NewCounter(prometheus.CounterOpts{
			Name: "usage_rollup_consumed_bytes_total", Help: "Bytes of Kafka record values read.",
		}),
		accepted: f.NewCounter(prometheus.CounterOpts{
			Name: "usage_rollup_events_accepted_total", Help: "Events decoded and counted into the rollups.",
		}),
		duplicates: f.NewCounter(prometheus.CounterOpts{
			Name: "usage_rollup_events_duplicate_total", Help: "Valid events dropped because their id was already counted within the dedup horizon.",
		}),
		rejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "usage_rollup_events_rejected_total", Help: "Messages rejected by the decoder, by reason.",
		}, []string{"reason"}),
		writes: f.NewCounter(prometheus.CounterOpts{
			Name: "usage_rollup_batches_written_total", Help: "Batches written to ClickHouse.",
		}),
		writeErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "usage_rollup_batch_write_errors_total", Help: "Failed batch write attempts (each is retried).",
		}),
		writeTime: f.NewHistogram(prometheus.HistogramOpts{
			Name: "usage_rollup_batch_write_duration_seconds", Help: "Duration of successful batch writes.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		commits: f.NewCounter(prometheus.CounterOpts{
			Name: "usage_rollup_offset_commits_total", Help: "Offset commits sent after a durable write.",
		}),
		commitErrs: f.NewCounter(prometheus.CounterOpts{
			Name: "usage_rollup_offset_commit_errors_total", Help: "Offset commits that failed (harmless: the commit is only a resume hint).",
		}),
		rebalances: f.NewCounter(prometheus.CounterOpts{
			Name: "usage_rollup_rebalances_total", Help: "Consumer group generations joined.",
		}),
		assigned: f.NewGauge(prometheus.GaugeOpts{
			Name: "usage_rollup_assigned_partitions", Help: "Partitions assigned in the current generation.",
		}),
		groups: f.NewGauge(prometheus.GaugeOpts{
			Name: "usage_rollup_groups_in_memory", Help: "Rollup groups held in memory for open chunks, over all partitions and windows.",
		}),
	}
	for _, r := range events.Reasons {
		m.rejected.WithLabelValues(string(r)) // expose zeros so rate() works from the start
	}
	return m
}
