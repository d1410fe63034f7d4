// Package consumer runs the Kafka side of the pipeline: it joins the consumer
// group, runs one goroutine per assigned partition, feeds records through the
// decoder into the partition's aggregate, writes batches through a BatchWriter
// and commits offsets only after the write succeeded.
package consumer

import (
	"fmt"
	"time"
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
	// copied out of it) and, once decoded, gives back all but its records. With large messages, many partitions and a slow ClickHouse, this
	// (not the partition count) is what fetched data costs in memory.
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
		FetchBufferBytes:  256 << 20,
		SessionTimeout:    30 * time.Second,
		RebalanceTimeout:  60 * time.Second,
		HeartbeatInterval: 3 * time.Second,
		RetryBackoffMax:   30 * time.Second,
		IdleTimeout:       time.Minute,
		StallTimeout:      10 * time.Minute,
		EndOffsetInterval: 5 * time.Second,
	}
}

// Validate reports the first invalid field, naming its environment variable.
func (c Config) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return fmt.Errorf("KAFKA_BROKERS must list at least one broker")
	case c.Topic == "":
		return fmt.Errorf("KAFKA_TOPIC must not be empty")
	case c.GroupID == "":
		return fmt.Errorf("KAFKA_GROUP_ID must not be empty")
	case c.FlushInterval < 100*time.Millisecond:
		return fmt.Errorf("FLUSH_INTERVAL must be >= 100ms, got %s", c.FlushInterval)
	case c.ShutdownTimeout <= 0:
		return fmt.Errorf("SHUTDOWN_TIMEOUT must be > 0, got %s", c.ShutdownTimeout)
	case c.ShutdownTimeout >= c.SessionTimeout:
		// kafka-go stops heartbeating while an ended generation's partitions
		// do their final flush; a longer flush gets the member evicted.
		return fmt.Errorf("SHUTDOWN_TIMEOUT (%s) must be below KAFKA_SESSION_TIMEOUT (%s)", c.ShutdownTimeout, c.SessionTimeout)
	case c.RebalanceTimeout <= c.ShutdownTimeout:
		return fmt.Errorf("KAFKA_REBALANCE_TIMEOUT (%s) must exceed SHUTDOWN_TIMEOUT (%s)", c.RebalanceTimeout, c.ShutdownTimeout)
	case c.FetchMaxBytes < 1024:
		return fmt.Errorf("KAFKA_FETCH_MAX_BYTES must be >= 1024, got %d", c.FetchMaxBytes)
	case c.FetchBufferBytes < 2*int64(c.FetchMaxBytes):
		return fmt.Errorf("KAFKA_FETCH_BUFFER_BYTES (%d) must be at least twice KAFKA_FETCH_MAX_BYTES (%d): a fetch reserves room for its response and the records copied out of it", c.FetchBufferBytes, c.FetchMaxBytes)
	case c.SessionTimeout < 6*time.Second:
		return fmt.Errorf("KAFKA_SESSION_TIMEOUT must be >= 6s (broker minimum), got %s", c.SessionTimeout)
	case c.HeartbeatInterval <= 0 || c.HeartbeatInterval >= c.SessionTimeout:
		return fmt.Errorf("KAFKA_HEARTBEAT_INTERVAL must be > 0 and below KAFKA_SESSION_TIMEOUT, got %s", c.HeartbeatInterval)
	case c.RetryBackoffMax < 100*time.Millisecond:
		return fmt.Errorf("WRITE_RETRY_MAX_BACKOFF must be >= 100ms, got %s", c.RetryBackoffMax)
	case c.IdleTimeout <= 0:
		return fmt.Errorf("IDLE_PARTITION_TIMEOUT must be > 0, got %s", c.IdleTimeout)
	case c.StallTimeout < time.Minute:
		return fmt.Errorf("LIVENESS_STALL_TIMEOUT must be >= 1m, got %s", c.StallTimeout)
	case c.EndOffsetInterval <= 0:
		return fmt.Errorf("end offset interval must be > 0, got %s", c.EndOffsetInterval)
	case c.DeadLetterTopic != "" && c.DeadLetterTopic == c.Topic:
		return fmt.Errorf("DEAD_LETTER_TOPIC must differ from KAFKA_TOPIC")
	}
	return c.Security.Validate()
}
