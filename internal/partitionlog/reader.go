package partitionlog

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol/fetch"
	"github.com/usage-rollup/usage-rollup/internal/backoff"
)

// Protocol constants of a consumer's fetch.
const (
	// consumerReplicaID marks a fetch as a consumer's, not a follower's.
	consumerReplicaID = -1
	// readCommitted is the READ_COMMITTED isolation level: the broker
	// returns nothing past the last stable offset and lists the aborted
	// transactions of the range it returns.
	readCommitted = 1
	// sessionless (session id 0, epoch -1) asks for a full fetch outside any
	// incremental fetch session (KIP-227): a Reader fetches one partition,
	// so a session would save nothing.
	sessionlessID    = 0
	sessionlessEpoch = -1
	// noLeaderEpoch skips the leader-epoch fencing of KIP-320: after a
	// leader change the Reader refetches from the same offset anyway.
	noLeaderEpoch = -1
)

// unknownTopicGrace is how long UNKNOWN_TOPIC_OR_PARTITION (or a topic that
// kafka-go's metadata cache does not list yet) is retried before Fetch gives
// up: a new topic takes a few seconds to reach every broker, and kafka-go
// refreshes its cache at a random point within Transport.MetadataTTL (6s by
// default). A topic still unknown after that is gone, or misspelt.
const unknownTopicGrace = 30 * time.Second

// reserveFactor is what a fetch reserves from the budget, in multiples of
// MaxBytes: the response as read from the connection (kafka-go's pages) and
// the records' keys and values copied out of it live at the same time while
// the response is decoded.
const reserveFactor = 2

// Reader reads one partition's committed records. Fetch must not be called
// from two goroutines at once; a Fetch may be released from any goroutine.
type Reader struct {
	client    *kafka.Client
	transport kafka.RoundTripper
	cfg       Config
	budget    *Budget
	log       zerolog.Logger
	dec       decoder
	// spare holds the buffers of the last released fetch, for the next one.
	spare atomic.Pointer[buffers]
	// unknownTopicGrace is unknownTopicGrace; tests shorten it.
	unknownTopicGrace time.Duration
}

// NewReader returns a Reader of cfg's partition that sends its requests
// through client's transport (kafka.DefaultTransport when it has none) to the
// cluster at client.Addr. Its fetches reserve memory from budget, which must
// hold at least twice cfg.MaxBytes (see reserveFactor).
func NewReader(client *kafka.Client, cfg Config, budget *Budget, log zerolog.Logger) (*Reader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case client == nil || client.Addr == nil:
		return nil, errors.New("partitionlog: the kafka client has no address")
	case budget == nil:
		return nil, errors.New("partitionlog: no budget")
	case budget.Size() < reserveFactor*int64(cfg.MaxBytes):
		return nil, fmt.Errorf("partitionlog: budget of %d bytes is below twice MaxBytes %d: no fetch could ever start",
			budget.Size(), cfg.MaxBytes)
	}
	transport := client.Transport
	if transport == nil {
		transport = kafka.DefaultTransport
	}
	return &Reader{
		client:            client,
		transport:         transport,
		cfg:               cfg,
		budget:            budget,
		dec:               decoder{blocks: &budget.blocks},
		log:               log.With().Str("component", "partitionlog").Str("topic", cfg.Topic).Int("partition", cfg.Partition).Logger(),
		unknownTopicGrace: unknownTopicGrace,
	}, nil
}

// Fetch returns the committed data records at or after offset, waiting up to
// Config.MaxWait for some when there are none yet; it returns an empty Fetch
// (Next == offset) when the wait ends without any. The broker may return a
// batch that starts before offset; its records before offset are dropped.
//
// Retriable failures (leader changes, a briefly unknown topic, network
// errors, timeouts) are retried with backoff until ctx ends. When the broker
// answers OFFSET_OUT_OF_RANGE, Fetch returns an *OffsetOutOfRangeError; other
// errors are returned wrapped. The caller must Release the Fetch.
func (r *Reader) Fetch(ctx context.Context, offset int64) (*Fetch, error) {
	var unknownSince time.Time
	for attempt := 0; ; attempt++ {
		f, err := r.fetchOnce(ctx, offset)
		if err == nil {
			return f, nil
		}
		if oor, ok := errors.AsType[*OffsetOutOfRangeError](err); ok {
			return nil, oor
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("fetch %s[%d] at offset %d: %w", r.cfg.Topic, r.cfg.Partition, offset, ctx.Err())
		}
		if !r.retriable(err, &unknownSince) {
			return nil, fmt.Errorf("fetch %s[%d] at offset %d: %w", r.cfg.Topic, r.cfg.Partition, offset, err)
		}
		d := backoff.Delay(attempt, r.cfg.RetryBackoffMax)
		r.log.Warn().Err(err).Int64("offset", offset).Int("attempt", attempt+1).Dur("backoff", d).
			Msg("fetch failed, retrying")
		if !backoff.Sleep(ctx, d) {
			return nil, fmt.Errorf("fetch %s[%d] at offset %d: %w", r.cfg.Topic, r.cfg.Partition, offset, ctx.Err())
		}
	}
}

// fetchOnce sends one fetch request and decodes its response.
func (r *Reader) fetchOnce(ctx context.Context, offset int64) (*Fetch, error) {
	reserved := reserveFactor * int64(r.cfg.MaxBytes)
	if err := r.budget.acquire(ctx, reserved); err != nil {
		return nil, fmt.Errorf("wait for fetch budget: %w", err)
	}
	// Until the decoded fetch takes over its share, the whole reservation
	// goes back on return.
	defer func() { r.budget.release(reserved) }()

	rctx, cancel := context.WithTimeout(ctx, r.cfg.MaxWait+r.cfg.RequestTimeout)
	defer cancel()
	// A fresh request each time: after a timeout, the transport may still
	// be writing the previous one.
	msg, err := r.transport.RoundTrip(rctx, r.client.Addr, r.request(offset))
	if err != nil {
		return nil, err
	}
	res, ok := msg.(*fetch.Response)
	if !ok {
		return nil, fmt.Errorf("fetch answered with a %T", msg)
	}
	if res.ErrorCode != 0 {
		return nil, kafka.Error(res.ErrorCode)
	}
	p := r.partitionOf(res)
	if p == nil {
		return nil, fmt.Errorf("fetch response lacks %s[%d]", r.cfg.Topic, r.cfg.Partition)
	}
	if p.ErrorCode != 0 {
		if err := kafka.Error(p.ErrorCode); err != kafka.OffsetOutOfRange {
			return nil, err
		}
		return nil, r.outOfRange(ctx, offset)
	}

	buf := r.takeBuffers()
	f := &Fetch{reader: r, buf: buf}
	if err := r.dec.decode(p, offset, buf, f); err != nil {
		r.putBuffers(buf)
		return nil, fmt.Errorf("decode fetch response: %w", err)
	}
	// The fetch keeps what its keys and values occupy until it is released;
	// the response's pages went back to kafka-go's pool as they were copied.
	f.held = min(buf.held(), reserved)
	reserved -= f.held
	return f, nil
}

// request is a read-committed fetch of the partition at offset.
func (r *Reader) request(offset int64) *fetch.Request {
	return &fetch.Request{
		ReplicaID:      consumerReplicaID,
		MaxWaitTime:    int32(r.cfg.MaxWait.Milliseconds()),
		MinBytes:       1,
		MaxBytes:       r.cfg.MaxBytes,
		IsolationLevel: readCommitted,
		SessionID:      sessionlessID,
		SessionEpoch:   sessionlessEpoch,
		Topics: []fetch.RequestTopic{{
			Topic: r.cfg.Topic,
			Partitions: []fetch.RequestPartition{{
				Partition:          int32(r.cfg.Partition),
				CurrentLeaderEpoch: noLeaderEpoch,
				FetchOffset:        offset,
				LogStartOffset:     -1,
				PartitionMaxBytes:  r.cfg.MaxBytes,
			}},
		}},
	}
}

// partitionOf finds the Reader's partition in res.
func (r *Reader) partitionOf(res *fetch.Response) *fetch.ResponsePartition {
	for i := range res.Topics {
		t := &res.Topics[i]
		if t.Topic != r.cfg.Topic {
			continue
		}
		for j := range t.Partitions {
			if p := &t.Partitions[j]; int(p.Partition) == r.cfg.Partition {
				return p
			}
		}
	}
	return nil
}

// takeBuffers returns the spare buffers, or new ones when the last fetch has
// not been released.
func (r *Reader) takeBuffers() *buffers {
	if b := r.spare.Swap(nil); b != nil {
		return b
	}
	return new(buffers)
}

// putBuffers keeps b for the next fetch; its blocks go back to the pool.
func (r *Reader) putBuffers(b *buffers) {
	b.reset(r.dec.blocks)
	r.spare.Store(b)
}
