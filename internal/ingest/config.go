// Package consumer runs the Kafka side of the pipeline: it joins the consumer
// group, runs one goroutine per assigned partition, feeds records through the
// decoder into the partition's aggregate, writes batches through a BatchWriter
// and commits offsets only after the write succeeded.
package ingest

import (
	"time"

	"github.com/usage-rollup/usage-rollup/internal/fielderr"
)

// Config is the Kafka loop's configuration.
type Config struct {
	Brokers []string
	Topic   string
	GroupID string
	// FlushInterval is how often a partition writes its changed rows and
	// commits, which bounds how stale the rollup tables are.
	FlushInterval time.Duration
	// ShutdownTimeout bounds the final write+commit of each partition when its
	// generation ends (SIGTERM or rebalance). It must stay below
	// RebalanceTimeout and SessionTimeout: kafka-go neither rejoins nor
	// heartbeats until every partition finished, and the group would evict us.
	ShutdownTimeout time.Duration
	// FetchMaxBytes is the most a fetch returns per partition. It must exceed
	// the broker's message.max.bytes so an oversized poison message can still
	// be fetched and rejected instead of stalling the partition.
	FetchMaxBytes int
	// FetchBufferBytes bounds the fetched bytes the whole process holds at
	// once, over all its partitions: a fetch reserves twice FetchMaxBytes
	// from it before it is sent (the response as read, and the records
	// copied out of it) and, once decoded, gives back all but its records.
	// With large messages, many partitions and a slow ClickHouse, this (not
	// the partition count) is what fetched data costs in memory. 0 means a
	// quarter of the Go memory limit (GOMEMLIMIT, which the chart sets from
	// the pod's memory limit), at most 256 MiB and at least one fetch.
	FetchBufferBytes int64
	// SessionTimeout, RebalanceTimeout and HeartbeatInterval are passed to the
	// group protocol.
	SessionTimeout    time.Duration
	RebalanceTimeout  time.Duration
	HeartbeatInterval time.Duration
	// RetryBackoffMax caps the jittered exponential backoff between write retries.
	RetryBackoffMax time.Duration
	// DeadLetterTopic, when set, receives every rejected message unchanged
	// with headers saying why and where it came from. Empty: rejections go to
	// the usage_rejected table only.
	DeadLetterTopic string
	// IdleTimeout is how long a caught-up partition may see no records before
	// it counts as idle: its closed_through then follows the wall clock minus
	// the allowed lateness, so an idle partition does not hold finality back.
	IdleTimeout time.Duration
	// SealIdleAfter is how long a caught-up partition whose current segment
	// holds groups may see no records before this consumer writes a seal
	// record into it (see seal.go), so that compaction can fold everything
	// it consumed; 0 disables sealing. Every replica of the group must run a
	// version that reads seal records before it is enabled: an older one
	// would not cut where the seal says (docs/operations.md, "Seal records").
	SealIdleAfter time.Duration
	// StallTimeout is how long an assigned partition with lag may go without
	// a durable write before the consumer reports itself not live.
	StallTimeout time.Duration
	// EndOffsetInterval is how often the log end offsets of the assigned
	// partitions are polled for lag, idleness and liveness.
	EndOffsetInterval time.Duration
	// Security is TLS and SASL towards the brokers (KAFKA_TLS_*, KAFKA_SASL_*).
	Security Security
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Topic:             "usage-events",
		GroupID:           "usage-rollup",
		FlushInterval:     5 * time.Second,
		ShutdownTimeout:   20 * time.Second,
		FetchMaxBytes:     16 << 20,
		FetchBufferBytes:  0,
		SessionTimeout:    30 * time.Second,
		RebalanceTimeout:  60 * time.Second,
		HeartbeatInterval: 3 * time.Second,
		RetryBackoffMax:   30 * time.Second,
		IdleTimeout:       time.Minute,
		StallTimeout:      10 * time.Minute,
		EndOffsetInterval: 5 * time.Second,
	}
}

// Validate reports the first invalid field as a *fielderr.Error.
func (c Config) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return fielderr.New("Brokers", "must list at least one broker")
	case c.Topic == "":
		return fielderr.New("Topic", "must not be empty")
	case c.GroupID == "":
		return fielderr.New("GroupID", "must not be empty")
	case c.FlushInterval < 100*time.Millisecond:
		return fielderr.New("FlushInterval", "must be >= 100ms, got %s", c.FlushInterval)
	case c.ShutdownTimeout <= 0:
		return fielderr.New("ShutdownTimeout", "must be > 0, got %s", c.ShutdownTimeout)
	case c.ShutdownTimeout >= c.SessionTimeout:
		// kafka-go stops heartbeating while an ended generation's partitions
		// do their final flush; a longer flush gets the member evicted.
		return fielderr.New("ShutdownTimeout", "(%s) must be below {SessionTimeout} (%s)", c.ShutdownTimeout, c.SessionTimeout)
	case c.RebalanceTimeout <= c.ShutdownTimeout:
		return fielderr.New("RebalanceTimeout", "(%s) must exceed {ShutdownTimeout} (%s)", c.RebalanceTimeout, c.ShutdownTimeout)
	case c.FetchMaxBytes < 1024:
		return fielderr.New("FetchMaxBytes", "must be >= 1024, got %d", c.FetchMaxBytes)
	case c.FetchBufferBytes != 0 && c.FetchBufferBytes < 2*int64(c.FetchMaxBytes):
		return fielderr.New("FetchBufferBytes", "(%d) must be at least twice {FetchMaxBytes} (%d): a fetch reserves room for its response and the records copied out of it", c.FetchBufferBytes, c.FetchMaxBytes)
	case c.SessionTimeout < 6*time.Second:
		return fielderr.New("SessionTimeout", "must be >= 6s (broker minimum), got %s", c.SessionTimeout)
	case c.HeartbeatInterval <= 0 || c.HeartbeatInterval >= c.SessionTimeout:
		return fielderr.New("HeartbeatInterval", "must be > 0 and below {SessionTimeout}, got %s", c.HeartbeatInterval)
	case c.RetryBackoffMax < 100*time.Millisecond:
		return fielderr.New("RetryBackoffMax", "must be >= 100ms, got %s", c.RetryBackoffMax)
	case c.IdleTimeout <= 0:
		return fielderr.New("IdleTimeout", "must be > 0, got %s", c.IdleTimeout)
	case c.SealIdleAfter != 0 && c.SealIdleAfter < time.Second:
		return fielderr.New("SealIdleAfter", "must be 0 (off) or >= 1s, got %s", c.SealIdleAfter)
	case c.StallTimeout < time.Minute:
		return fielderr.New("StallTimeout", "must be >= 1m, got %s", c.StallTimeout)
	case c.EndOffsetInterval <= 0:
		return fielderr.New("EndOffsetInterval", "must be > 0, got %s", c.EndOffsetInterval)
	case c.DeadLetterTopic != "" && c.DeadLetterTopic == c.Topic:
		return fielderr.New("DeadLetterTopic", "must differ from {Topic}")
	}
	return fielderr.Nest("Security", c.Security.Validate())
}

// fetchBuffer resolves FetchBufferBytes (0: from the Go memory limit). A
// quarter of the limit leaves the rest for the aggregation state, the
// batches in flight and the garbage collector's headroom.
func fetchBuffer(configured int64, fetchMax int, memLimit int64) int64 {
	if configured > 0 {
		return configured
	}
	const ceiling = 256 << 20
	return max(min(memLimit/4, ceiling), 2*int64(fetchMax))
}
