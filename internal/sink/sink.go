// Package sink writes aggregate batches to ClickHouse and owns the schema
// migrations, the chunk-size guard and the classification of ClickHouse errors.
//
// Every row the sink writes is a pure function of the Kafka log (see
// aggregate.Batch), and the tables are ReplacingMergeTree keyed so that a
// rewrite or a shorter prefix cannot change what the FINAL views return. The
// caller can therefore retry a failed Write as often as it likes.
//
// The sink speaks the native protocol only and names the columns of every
// INSERT: both are required for ClickHouse 18.16, the oldest server we support.
package sink

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/rs/zerolog"
)

// conn is the part of clickhouse-go's wide driver.Conn the sink uses.
type conn interface {
	Exec(ctx context.Context, query string, args ...any) error
	QueryRow(ctx context.Context, query string, args ...any) driver.Row
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
	PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error)
	Ping(ctx context.Context) error
	Close() error
}

var (
	_ conn      = driver.Conn(nil)
	_ io.Closer = (*Sink)(nil)
)

// Sink writes batches to one ClickHouse database. It is safe for concurrent
// use; each call takes a connection from the driver's pool.
type Sink struct {
	conn     conn
	cfg      Config
	log      zerolog.Logger
	version  string
	database string // backquoted, ready for SQL
	// windows maps a window name to its prepared INSERT, so that a batch for
	// a window the sink was not configured with fails before touching the server.
	windows map[string]string
	// migrations are rendered once in Open for this server's version.
	migrations []Migration
	// rollupBufs recycles column buffers across writes; partitions write
	// concurrently, so a pool rather than one buffer.
	rollupBufs sync.Pool
}

// Open connects to ClickHouse with the native protocol, checks the server
// answers, reads its version and, if cfg.Migrate is set, creates the database
// and applies the migrations.
func Open(ctx context.Context, cfg Config, log zerolog.Logger) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log = log.With().Str("component", "sink").Logger()
	if cfg.Migrate {
		// The handshake fails for a database that does not exist yet, so it
		// is created over a connection to the server's default database.
		if err := createDatabase(ctx, cfg); err != nil {
			return nil, err
		}
	}
	c, err := dial(cfg, cfg.Database)
	if err != nil {
		return nil, err
	}
	s, err := newSink(ctx, c, cfg, log)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	if cfg.Migrate {
		if err := s.Migrate(ctx); err != nil {
			_ = c.Close()
			return nil, err
		}
	}
	log.Info().Str("server_version", s.version).Strs("addr", cfg.Addr).Str("database", cfg.Database).
		Bool("migrated", cfg.Migrate).Msg("connected to ClickHouse")
	return s, nil
}

func dial(cfg Config, database string) (driver.Conn, error) {
	tlsConfig, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	c, err := clickhouse.Open(&clickhouse.Options{
		// HTTP does not work against 18.16 with this driver; see docs/schema.md.
		Protocol: clickhouse.Native,
		Addr:     cfg.Addr,
		Auth: clickhouse.Auth{
			Database: database,
			Username: cfg.Username,
			Password: cfg.Password,
		},
		TLS:         tlsConfig, // nil: plain TCP
		DialTimeout: cfg.DialTimeout,
		// Rows of one batch share most dimension values; LZ4 shrinks them
		// several-fold at negligible CPU cost.
		Compression: &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
		ClientInfo: clickhouse.ClientInfo{
			Products: []struct{ Name, Version string }{{Name: "usage-rollup", Version: "1"}},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("open ClickHouse %v: %w", cfg.Addr, err)
	}
	return c, nil
}

func createDatabase(ctx context.Context, cfg Config) error {
	// "" selects the server's default_database, which every user can reach.
	c, err := dial(cfg, "")
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, cfg.InsertTimeout)
	defer cancel()
	if err := c.Exec(ctx, "CREATE DATABASE IF NOT EXISTS `"+cfg.Database+"`"); err != nil && !isAlreadyExists(err) {
		return fmt.Errorf("create database %s on %v: %w", cfg.Database, cfg.Addr, err)
	}
	return nil
}

func newSink(ctx context.Context, c conn, cfg Config, log zerolog.Logger) (*Sink, error) {
	s := &Sink{
		conn:     c,
		cfg:      cfg,
		log:      log,
		database: "`" + cfg.Database + "`",
		windows:  make(map[string]string, len(cfg.Windows)),
	}
	if err := s.Ping(ctx); err != nil {
		return nil, err
	}
	qctx, cancel := context.WithTimeout(ctx, cfg.InsertTimeout)
	defer cancel()
	if err := c.QueryRow(qctx, "SELECT version()").Scan(&s.version); err != nil {
		return nil, fmt.Errorf("query ClickHouse version: %w", err)
	}
	var err error
	if s.migrations, err = RenderMigrations(s.version, cfg.Database, cfg.Windows); err != nil {
		return nil, err
	}
	for _, w := range cfg.Windows {
		s.windows[w.Name] = "INSERT INTO " + s.database + ".usage_rollup_" + w.Name + " (" + rollupColumns + ")"
	}
	return s, nil
}

// ServerVersion is the version the server reported in Open, e.g. "18.16.1".
func (s *Sink) ServerVersion() string { return s.version }

// Ping checks that a server answers, within the dial timeout.
func (s *Sink) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	if err := s.conn.Ping(ctx); err != nil {
		return fmt.Errorf("ping ClickHouse %v: %w", s.cfg.Addr, err)
	}
	return nil
}

// Close closes the connection pool. Writes in flight fail.
func (s *Sink) Close() error {
	if err := s.conn.Close(); err != nil {
		return fmt.Errorf("close ClickHouse connection: %w", err)
	}
	return nil
}

// statementContext bounds one statement by the insert timeout.
func (s *Sink) statementContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.InsertTimeout)
}

// utcSeconds clamps a Unix time to what DateTime stores (1970 to 2106), which
// the driver would otherwise wrap silently.
func utcSeconds(sec int64) int64 {
	const maxDateTime = 1<<32 - 1
	return max(0, min(sec, maxDateTime))
}

// now is the written_at / rejected_at clock; a variable so tests can pin it.
var now = time.Now
