package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/usage-rollup/usage-rollup/internal/backoff"
)

// produceBatch is how many messages one synchronous WriteMessages call carries
// when unpaced: enough to amortize the acks=all round trip (~1 ms on loopback),
// small enough (~250 KB) to stay far below the 1 MB default batch limit.
const produceBatch = 500

// batchLinger is the kafka-go Writer's BatchTimeout. A synchronous write waits
// that long for every partition batch that is not full, and the messages of a
// call are all enqueued before the wait starts, so the timeout is pure latency;
// kafka-go's 1 s default would cap unpaced throughput at ~500 messages/s.
const batchLinger = 2 * time.Millisecond

// minSleep is the shortest pacing pause worth flushing and sleeping for;
// shorter waits are absorbed by the next write.
const minSleep = 2 * time.Millisecond

// Produce generates the stream of cfg and writes it to topic, which must exist
// (see EnsureTopic). Messages are keyed by event id, so a duplicate lands in
// its original's partition. Writes wait for all in-sync replicas and are
// synchronous: Produce returns when every message is acknowledged, or with the
// first write error. On error the returned Expected covers the messages
// generated so far, some of which may not have been written.
func Produce(ctx context.Context, brokers []string, topic string, cfg Config) (Expected, error) {
	if len(brokers) == 0 {
		return Expected{}, errors.New("no brokers given")
	}
	transport := &kafka.Transport{ClientID: "usage-rollup-loadgen"}
	defer transport.CloseIdleConnections()
	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    produceBatch,
		BatchTimeout: batchLinger,
		Transport:    transport,
	}
	p := producer{ctx: ctx, w: w, topic: topic, rate: cfg.Rate, start: time.Now()}
	exp, err := Generate(cfg, p.emit)
	if err == nil {
		err = p.flush()
	}
	if cerr := w.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close writer: %w", cerr)
	}
	return exp, err
}

// messageWriter is the part of *kafka.Writer the producer uses.
type messageWriter interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

var _ messageWriter = (*kafka.Writer)(nil)

// producer buffers generated messages into synchronous batch writes, paced
// to rate messages per second when rate > 0.
type producer struct {
	ctx   context.Context
	w     messageWriter
	topic string
	rate  float64
	start time.Time
	n     int // messages handed over so far
	buf   []kafka.Message
}

func (p *producer) emit(key, value []byte) error {
	if p.rate > 0 {
		due := p.start.Add(sendOffset(p.n, p.rate))
		if wait := time.Until(due); wait >= minSleep {
			// Nothing else to do until the message is due: ship what is buffered
			// first so it is not held back through the pause.
			if err := p.flush(); err != nil {
				return err
			}
			if err := sleep(p.ctx, time.Until(due)); err != nil {
				return err
			}
		}
	}
	p.n++
	p.buf = append(p.buf, kafka.Message{Key: key, Value: value})
	if len(p.buf) >= produceBatch {
		return p.flush()
	}
	return nil
}

func (p *producer) flush() error {
	if len(p.buf) == 0 {
		return nil
	}
	if err := p.w.WriteMessages(p.ctx, p.buf...); err != nil {
		return fmt.Errorf("write %d messages to %s: %w", len(p.buf), p.topic, err)
	}
	// kafka-go keeps no reference once a synchronous write returns, so the
	// slice can be reused.
	p.buf = p.buf[:0]
	return nil
}

// sendOffset is when message n is due after the start of a run paced at rate
// messages per second, rounded up so a message is never sent early.
func sendOffset(n int, rate float64) time.Duration {
	return time.Duration(math.Ceil(float64(n) * float64(time.Second) / rate))
}

// sleep waits for d, or returns ctx's error if ctx ends first.
func sleep(ctx context.Context, d time.Duration) error {
	if !backoff.Sleep(ctx, d) {
		return ctx.Err()
	}
	return nil
}

// EnsureTopic creates topic with the given number of partitions (replication
// factor 1) unless it exists, then waits until every partition has a leader.
// It reports whether it created the topic and the topic's partition count,
// which differs from partitions when the topic already existed.
//
// CreateTopics goes to any broker: since KIP-590 a KRaft broker forwards it to
// the active controller. Tested against Kafka 4.1, which accepts CreateTopics
// v2-v7; kafka-go's Client negotiates v5 and its Conn.CreateTopics v2, so both
// work (KIP-896 removed only v0-v1).
func EnsureTopic(ctx context.Context, brokers []string, topic string, partitions int) (created bool, n int, err error) {
	if len(brokers) == 0 {
		return false, 0, errors.New("no brokers given")
	}
	transport := &kafka.Transport{ClientID: "usage-rollup-loadgen"}
	defer transport.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: transport}
	res, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: partitions, ReplicationFactor: 1,
	}}})
	if err != nil {
		return false, 0, fmt.Errorf("create topic %s: %w", topic, err)
	}
	switch terr := res.Errors[topic]; {
	case terr == nil:
		created = true
	case errors.Is(terr, kafka.TopicAlreadyExists):
	default:
		return false, 0, fmt.Errorf("create topic %s: %w", topic, terr)
	}
	n, err = waitLeaders(ctx, c, topic)
	return created, n, err
}

// leaderPoll is how often EnsureTopic re-reads metadata while a new topic's
// partitions elect leaders (tens of milliseconds on a single KRaft node).
const leaderPoll = 50 * time.Millisecond

func waitLeaders(ctx context.Context, c *kafka.Client, topic string) (int, error) {
	for {
		md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err != nil {
			return 0, fmt.Errorf("metadata for topic %s: %w", topic, err)
		}
		if ready, n := leadersReady(md, topic); ready {
			return n, nil
		}
		if err := sleep(ctx, leaderPoll); err != nil {
			return 0, fmt.Errorf("wait for leaders of topic %s: %w", topic, err)
		}
	}
}

func leadersReady(md *kafka.MetadataResponse, topic string) (bool, int) {
	for _, t := range md.Topics {
		if t.Name != topic || t.Error != nil || len(t.Partitions) == 0 {
			continue
		}
		for _, p := range t.Partitions {
			if p.Error != nil || p.Leader.Host == "" {
				return false, 0
			}
		}
		return true, len(t.Partitions)
	}
	return false, 0
}
