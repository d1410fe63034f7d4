// Package sink writes aggregate batches to ClickHouse: the rollup rows of
// each window, rejected messages, chunk progress and finality, and reads a
// chunk back for the consumer to carry on from. It classifies its failures
// for the consumer's retries (Transient).
//
// Every row the sink writes is a pure function of the Kafka log (see
// aggregate.Batch), and the tables are ReplacingMergeTree keyed so that a
// rewrite or a shorter prefix cannot change what the FINAL views return. The
// caller can therefore retry a failed Write as often as it likes.
//
// The connection comes from internal/chconn, the tables from
// internal/schema, which must have migrated the database and checked the
// topic's row layout first. Every INSERT names its columns, as ClickHouse
// 18.16, the oldest server supported, requires.
package sink

import (
	"context"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/usage-rollup/usage-rollup/internal/chconn"
)

// Conn is the part of a ClickHouse connection (chconn.Conn) the sink uses.
type Conn interface {
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
	QueryRow(ctx context.Context, query string, args ...any) driver.Row
	Insert(ctx context.Context, query string, fill func(driver.Batch) error) error
	StatementContext(ctx context.Context) (context.Context, context.CancelFunc)
	Database() string
}

var _ Conn = (*chconn.Conn)(nil)

// Sink writes batches to one ClickHouse database. It is safe for concurrent
// use; each call takes a connection from the driver's pool. It does not own
// the connection: the caller closes it after the last write.
type Sink struct {
	conn     Conn
	cfg      Config
	database string // backquoted, ready for SQL
	// windows maps a window name to its prepared INSERT, so that a batch for
	// a window the sink was not configured with fails before touching the server.
	windows map[string]string
	// rollupBufs recycles column buffers across writes; partitions write
	// concurrently, so a pool rather than one buffer.
	rollupBufs sync.Pool
}

// New returns a sink writing over c. It sends nothing to the server.
func New(c Conn, cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Sink{
		conn:     c,
		cfg:      cfg,
		database: "`" + c.Database() + "`",
		windows:  make(map[string]string, len(cfg.Windows)),
	}
	for _, w := range cfg.Windows {
		s.windows[w.Name] = "INSERT INTO " + s.database + ".usage_rollup_" + w.Name + " (" + rollupColumns + ")"
	}
	return s, nil
}

// Transient reports whether a failed Write, WriteFinality or ReadChunk may
// succeed unchanged later without anyone acting: chconn.IsTransient, as a
// method so that the consumer classifies the errors of the writer it was
// given without importing ClickHouse packages.
func (s *Sink) Transient(err error) bool { return chconn.IsTransient(err) }

// utcSeconds clamps a Unix time to what DateTime stores (1970 to 2106), which
// the driver would otherwise wrap silently.
func utcSeconds(sec int64) int64 {
	const maxDateTime = 1<<32 - 1
	return max(0, min(sec, maxDateTime))
}
