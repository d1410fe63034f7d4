// Package partitionlog reads one Kafka partition's log with read-committed
// semantics: it sends Fetch requests itself (isolation level
// READ_COMMITTED) through kafka-go's protocol layer and applies the
// transaction filter a Java consumer applies, because kafka-go's Reader
// neither hides control batches nor drops records of aborted transactions
// (https://github.com/segmentio/kafka-go/issues/1332): with it, a
// transactional producer's aborted events would be counted and its commit
// and abort markers would reach the event decoder.
//
// A Fetch reports, besides the committed data records, where the next fetch
// starts and which offsets of the range it covered are absent from the log,
// so the caller can tell "every offset was seen" from "the log has a hole".
package partitionlog

import (
	"errors"
	"fmt"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/backoff"
)

// Config says which partition a Reader reads and how it fetches.
type Config struct {
	// Topic and Partition name the partition.
	Topic     string
	Partition int
	// MaxBytes is the most one fetch asks the broker for (the partition's
	// and the response's limit) and what a fetch reserves from the Budget
	// before it is sent. It must exceed the topic's max.message.bytes (the
	// broker's message.max.bytes): the broker still returns a first batch
	// larger than MaxBytes (KIP-74), so a smaller value lets one response
	// outgrow its reservation.
	MaxBytes int32
	// MaxWait is how long the broker may hold a fetch while the partition has
	// no committed data past the fetch offset. Data is returned as soon as
	// there is any (MinBytes is 1), so it only sets how often an idle
	// partition polls.
	MaxWait time.Duration
	// RequestTimeout is how long a request may take beyond MaxWait before it
	// is abandoned (its connection closed) and retried: it bounds how long a
	// dead broker connection can stall the partition.
	RequestTimeout time.Duration
	// RetryBackoffMax caps the jittered exponential backoff between retries
	// of a fetch that failed with a retriable error.
	RetryBackoffMax time.Duration
}

// DefaultConfig returns the defaults for the given partition.
func DefaultConfig(topic string, partition int) Config {
	return Config{
		Topic:     topic,
		Partition: partition,
		// 16 MiB stays above the broker's default message.max.bytes (1 MiB)
		// even for topics that raise it severalfold.
		MaxBytes: 16 << 20,
		MaxWait:  time.Second,
		// The Java clients' request.timeout.ms default.
		RequestTimeout:  30 * time.Second,
		RetryBackoffMax: 10 * time.Second,
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Topic == "":
		return errors.New("partitionlog: Topic is empty")
	case c.Partition < 0:
		return fmt.Errorf("partitionlog: Partition %d is negative", c.Partition)
	case c.MaxBytes <= 0:
		return fmt.Errorf("partitionlog: MaxBytes %d must be positive", c.MaxBytes)
	case c.MaxWait < time.Millisecond:
		// The protocol carries it in milliseconds.
		return fmt.Errorf("partitionlog: MaxWait %v must be at least 1ms", c.MaxWait)
	case c.RequestTimeout <= 0:
		return fmt.Errorf("partitionlog: RequestTimeout %v must be positive", c.RequestTimeout)
	case c.RetryBackoffMax < backoff.Min:
		return fmt.Errorf("partitionlog: RetryBackoffMax %v must be at least %v", c.RetryBackoffMax, backoff.Min)
	}
	return nil
}
