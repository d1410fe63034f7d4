package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/events"
)

// BatchWriter makes a batch durable. It must be safe for concurrent use by
// all partition goroutines and must respect ctx.
type BatchWriter interface {
	Write(ctx context.Context, b *aggregate.Batch) error
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

// Consumer is the consumer-group loop. Create it with New and call Run once.
type Consumer struct {
	cfg     Config
	agg     aggregate.Config
	dec     events.Config
	writer  BatchWriter
	log     zerolog.Logger
	metrics *metrics
	dialer  *kafka.Dialer
	// client answers the partitions' metadata questions (first offsets). Its
	// transport pools connections; Run closes them on exit.
	client *kafka.Client
	writes atomic.Int64 // successful writes, only for the CrashAfterWrites failpoint
}

// New checks the configuration and returns a Consumer.
func New(cfg Config, agg aggregate.Config, dec events.Config, w BatchWriter, log zerolog.Logger, reg prometheus.Registerer) (*Consumer, error) {
	for _, err := range []error{cfg.Validate(), agg.Validate(), dec.Validate()} {
		if err != nil {
			return nil, err
		}
	}
	dialer := &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true}
	return &Consumer{
		client: &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 10 * time.Second,
			Transport: &kafka.Transport{Dial: dialer.DialFunc, ClientID: "usage-rollup"}},
		cfg:     cfg,
		agg:     agg,
		dec:     dec,
		writer:  w,
		log:     log.With().Str("component", "consumer").Logger(),
		metrics: newMetrics(reg),
		dialer:  dialer,
	}, nil
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
	c.log.Info().Strs("brokers", c.cfg.Brokers).Str("topic", c.cfg.Topic).Str("group", c.cfg.GroupID).Msg("joining consumer group")

	for attempt := 0; ; {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			c.log.Warn().Err(err).Msg("join consumer group generation; retrying")
			if !sleep(ctx, backoff(attempt, 10*time.Second)) {
				break
			}
			attempt++
			continue
		}
		attempt = 0
		c.metrics.rebalances.Inc()
		assigned := gen.Assignments[c.cfg.Topic]
		c.metrics.assigned.Set(float64(len(assigned)))
		ids := make([]int, 0, len(assigned))
		for _, a := range assigned {
			ids = append(ids, a.ID)
		}
		c.log.Info().Int32("generation", gen.ID).Ints("partitions", ids).Msg("joined generation")
		for _, a := range assigned {
			p := newPartitionWorker(c, gen, a.ID)
			committed := a.Offset
			gen.Start(func(ctx context.Context) { p.run(ctx, committed) })
		}
	}

	start := time.Now()
	c.log.Info().Msg("shutting down: stopping fetches and flushing partitions")
	err = group.Close()
	c.client.Transport.(*kafka.Transport).CloseIdleConnections()
	c.metrics.assigned.Set(0)
	c.log.Info().Dur("took", time.Since(start)).Msg("left consumer group")
	if err != nil && !errors.Is(err, kafka.ErrGroupClosed) {
		return fmt.Errorf("close consumer group: %w", err)
	}
	return nil
}

// kafkaLogger adapts kafka-go's printf logging to zerolog at a fixed level.
func kafkaLogger(log zerolog.Logger, level zerolog.Level) kafka.LoggerFunc {
	l := log.With().Str("component", "kafka-go").Logger()
	return func(msg string, args ...any) { l.WithLevel(level).Msgf(msg, args...) }
}
