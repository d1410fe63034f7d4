package ingest

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/backoff"
	"github.com/usage-rollup/usage-rollup/internal/events"
	"github.com/usage-rollup/usage-rollup/internal/kafkaoffsets"
	"github.com/usage-rollup/usage-rollup/internal/partitionlog"
)

// BatchWriter makes batches durable. It must be safe for concurrent use and
// must respect ctx. The consumer calls it from one goroutine, the coalescer,
// which merges the writes of all partitions.
type BatchWriter interface {
	// WriteBatches writes batches of any partitions together.
	WriteBatches(ctx context.Context, bs []*aggregate.Batch) error
	// WriteFinalities records how far partitions' windows are complete.
	WriteFinalities(ctx context.Context, fs []aggregate.Finality) error
	// ReadChunk returns what is stored of one chunk of a partition, for a
	// chunk the log can no longer reproduce in full (aggregate.ChunkState.Carry).
	ReadChunk(ctx context.Context, topic string, partition int32, chunk int64) (*aggregate.StoredChunk, error)
	// Transient reports whether a failed write may succeed unchanged later
	// (outage, timeout, overload) rather than needing an operator (schema,
	// permissions). Both are retried, since dropping the batch would lose
	// events; the second kind is logged at error level.
	Transient(err error) bool
}

// committer is the part of a consumer group generation a partition needs.
type committer interface {
	CommitOffsets(offsets map[string]map[int]int64) error
}

var _ committer = (*kafka.Generation)(nil)

// deadLetterWriter is the part of a kafka.Writer the dead-letter path needs.
type deadLetterWriter interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

var _ deadLetterWriter = (*kafka.Writer)(nil)

// Consumer is the consumer-group loop. Create it with New and call Run once.
type Consumer struct {
	cfg       Config
	agg       aggregate.Config
	dec       events.Config
	writer    BatchWriter
	log       zerolog.Logger
	metrics   *metrics
	dialer    *kafka.Dialer
	transport *kafka.Transport
	// client answers metadata questions (first and end offsets), fetches
	// and writes seal records.
	client *kafka.Client
	// newDeadLetterWriter is nil unless DeadLetterTopic is set. Each
	// partition gets its own writer: kafka-go's Writer merges concurrent
	// WriteMessages calls into one batch, so with a shared one a small dead
	// letter could be refused together with another partition's oversized
	// one, and the refusal could not be told apart from its own.
	newDeadLetterWriter func() *kafka.Writer
	status              *status
	// budget bounds the fetched bytes all partition readers hold at once.
	budget *partitionlog.Budget
	// out merges the partitions' writes into one INSERT per table.
	out *coalescer
}

// dialTimeout bounds connecting to a broker, TLS and SASL included.
const dialTimeout = 10 * time.Second

// New checks the configuration and returns a Consumer.
func New(cfg Config, agg aggregate.Config, dec events.Config, w BatchWriter, log zerolog.Logger, reg prometheus.Registerer) (*Consumer, error) {
	for _, err := range []error{cfg.Validate(), agg.Validate(), dec.Validate()} {
		if err != nil {
			return nil, err
		}
	}
	// The dialer serves the group and the partition readers, the transport
	// the admin client and the dead-letter producer; both carry TLS and SASL.
	dialer, err := cfg.Security.Dialer(dialTimeout)
	if err != nil {
		return nil, err
	}
	transport := cfg.Security.Transport(dialer)
	transport.ClientID = "usage-rollup"
	windows := make([]string, len(agg.Windows))
	for i, w := range agg.Windows {
		windows[i] = w.Name
	}
	c := &Consumer{
		cfg:       cfg,
		agg:       agg,
		dec:       dec,
		writer:    w,
		log:       log.With().Str("component", "consumer").Logger(),
		metrics:   newMetrics(reg, windows),
		dialer:    dialer,
		transport: transport,
		client:    &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: dialTimeout, Transport: transport},
		status:    newStatus(),
		budget:    partitionlog.NewBudget(fetchBuffer(cfg.FetchBufferBytes, cfg.FetchMaxBytes, debug.SetMemoryLimit(-1))),
	}
	c.out = newCoalescer(w, agg.MaxBatchRows, c.metrics, c.log)
	if cfg.DeadLetterTopic != "" {
		c.newDeadLetterWriter = func() *kafka.Writer {
			return &kafka.Writer{
				Addr:         kafka.TCP(cfg.Brokers...),
				Topic:        cfg.DeadLetterTopic,
				Transport:    transport,
				Balancer:     &kafka.Hash{}, // same key, same partition, as in the source topic
				RequiredAcks: kafka.RequireAll,
				// Writes are synchronous and flushed by the partition before its
				// ClickHouse write; lingering would only add latency.
				BatchTimeout: 5 * time.Millisecond,
				// A rejected message may be as large as anything we can fetch.
				// kafka-go refuses bigger ones before sending (a compressed
				// record can decompress beyond FetchMaxBytes); they get a
				// truncated dead letter, like those the topic refuses.
				BatchBytes: int64(cfg.FetchMaxBytes) + 1<<20,
				// The broker checks max.message.bytes against the compressed
				// batch, so a message the producer compressed to fit the source
				// topic usually fits here again. zstd: the best ratio of
				// kafka-go's codecs at a moderate CPU cost, on a path that only
				// carries rejected messages; brokers and clients since Kafka 2.1
				// read it.
				Compression: kafka.Zstd,
			}
		}
	}
	return c, nil
}

// Run joins the group and consumes until ctx ends. On return every partition
// has stopped fetching, written what it held (within ShutdownTimeout),
// committed, and the member has left the group.
func (c *Consumer) Run(ctx context.Context) error {
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                     c.cfg.GroupID,
		Brokers:                c.cfg.Brokers,
		Dialer:                 c.dialer,
		Topics:                 []string{c.cfg.Topic},
		HeartbeatInterval:      c.cfg.HeartbeatInterval,
		SessionTimeout:         c.cfg.SessionTimeout,
		RebalanceTimeout:       c.cfg.RebalanceTimeout,
		PartitionWatchInterval: 5 * time.Second,
		WatchPartitionChanges:  true,
		// Without a committed offset a partition starts at its first offset:
		// a new group must count everything still retained.
		StartOffset: kafka.FirstOffset,
		Logger:      kafkaLogger(c.log, zerolog.DebugLevel),
		ErrorLogger: kafkaLogger(c.log, zerolog.WarnLevel),
	})
	if err != nil {
		return fmt.Errorf("create consumer group %q: %w", c.cfg.GroupID, err)
	}
	c.log.Info().Strs("brokers", c.cfg.Brokers).Str("topic", c.cfg.Topic).Str("group", c.cfg.GroupID).
		Object("kafka_security", c.cfg.Security).Msg("joining consumer group")

	// The poller and the coalescer outlive ctx: partitions do their final
	// flushes after it ends, and stop only after group.Close returned.
	pollCtx, stopPolling := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		c.out.run(pollCtx)
	}()
	go func() {
		defer wg.Done()
		c.pollEndOffsets(pollCtx)
	}()

	var assigned []int
	for attempt := 0; ; {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			c.log.Warn().Err(err).Msg("join consumer group generation; retrying")
			if !backoff.Sleep(ctx, backoff.Delay(attempt, 10*time.Second)) {
				break
			}
			attempt++
			continue
		}
		attempt = 0
		c.releasePartitions(assigned)
		c.metrics.rebalances.Inc()
		assigned = assigned[:0]
		for _, a := range gen.Assignments[c.cfg.Topic] {
			assigned = append(assigned, a.ID)
		}
		c.status.assign(assigned, time.Now())
		c.metrics.assigned.Set(float64(len(assigned)))
		c.log.Info().Int32("generation", gen.ID).Ints("partitions", assigned).Msg("joined generation")
		for _, a := range gen.Assignments[c.cfg.Topic] {
			p := newPartitionLoop(c, gen, a.ID)
			committed := a.Offset
			gen.Start(func(ctx context.Context) { p.run(ctx, committed) })
		}
	}

	start := time.Now()
	c.log.Info().Msg("shutting down: stopping fetches and flushing partitions")
	err = group.Close()
	c.releasePartitions(assigned)
	stopPolling()
	wg.Wait()

	c.transport.CloseIdleConnections()
	c.metrics.assigned.Set(0)
	c.log.Info().Dur("took", time.Since(start)).Msg("left consumer group")
	if err != nil && !errors.Is(err, kafka.ErrGroupClosed) {
		return fmt.Errorf("close consumer group: %w", err)
	}
	return nil
}

// releasePartitions forgets the partitions of an ended generation, including
// their labelled series, so labels stay bounded by what is assigned.
func (c *Consumer) releasePartitions(partitions []int) {
	c.status.release()
	for _, p := range partitions {
		c.metrics.lag.DeleteLabelValues(strconv.Itoa(p))
		c.metrics.watermark.DeleteLabelValues(strconv.Itoa(p))
	}
}

// pollEndOffsets keeps lag, idleness, finality and freshness metrics current:
// one ListOffsets request for all assigned partitions per interval.
func (c *Consumer) pollEndOffsets(ctx context.Context) {
	t := time.NewTicker(c.cfg.EndOffsetInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		_, views := c.status.snapshot(now)
		if len(views) > 0 {
			ps := make([]int, len(views))
			for i, v := range views {
				ps[i] = v.partition
			}
			ends, err := kafkaoffsets.Ends(ctx, c.client, c.cfg.Topic, ps...)
			if err != nil {
				c.log.Debug().Err(err).Msg("poll end offsets")
			}
			for p, end := range ends {
				c.status.setEnd(p, end)
			}
		}
		c.updateProgressMetrics(now)
	}
}

func (c *Consumer) updateProgressMetrics(now time.Time) {
	_, views := c.status.snapshot(now)
	var closedMin, newest int64
	closedKnown := len(views) > 0
	for i, v := range views {
		label := strconv.Itoa(v.partition)
		if v.lag >= 0 {
			c.metrics.lag.WithLabelValues(label).Set(float64(v.lag))
		}
		if v.watermarkMs > 0 {
			c.metrics.watermark.WithLabelValues(label).Set(float64(v.watermarkMs) / 1000)
		}
		if i == 0 || v.closedMs < closedMin {
			closedMin = v.closedMs
		}
		closedKnown = closedKnown && v.closedMs > 0
		newest = max(newest, v.maxEventMs)
	}
	// Until every assigned partition wrote a closed_through the oldest one is
	// unknown; publishing 0 would read as "nothing complete since 1970".
	if closedKnown {
		c.metrics.closed.Set(float64(closedMin) / 1000)
	}
	if newest > 0 {
		// Events stamped ahead of this clock (within MAX_FUTURE_SKEW) count
		// as fresh, not as negative staleness.
		c.metrics.freshness.Set(max(now.Sub(time.UnixMilli(newest)).Seconds(), 0))
	}
	ready := 0.0
	if c.Ready() == nil {
		ready = 1
	}
	c.metrics.ready.Set(ready)
}

// kafkaLogger adapts kafka-go's printf logging to zerolog at a fixed level.
func kafkaLogger(log zerolog.Logger, level zerolog.Level) kafka.LoggerFunc {
	l := log.With().Str("component", "kafka-go").Logger()
	return func(msg string, args ...any) { l.WithLevel(level).Msgf(msg, args...) }
}
