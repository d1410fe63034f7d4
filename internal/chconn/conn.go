// Package chconn opens the connection to ClickHouse that the writer
// (internal/sink), the schema migrations (internal/schema) and the read-back
// for checks (internal/audit) share, and classifies ClickHouse errors as
// transient or not.
//
// It speaks the native protocol only: HTTP does not work against 18.16, the
// oldest server supported, with this driver (see docs/schema.md).
package chconn

import (
	"context"
	"fmt"
	"io"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/usage-rollup/usage-rollup/internal/fielderr"
)

// Conn is a pool of native connections to one database, with the server's
// version and the statement timeout. It is safe for concurrent use; each
// call takes a connection from the pool. The packages using it declare the
// few methods they need rather than take clickhouse-go's wide driver.Conn.
type Conn struct {
	conn     driver.Conn
	cfg      Config
	database string
	version  string
}

var _ io.Closer = (*Conn)(nil)

// Open connects to cfg.Database, checks that a server answers and reads its
// version. The database must exist: the handshake fails otherwise (see
// OpenServer).
func Open(ctx context.Context, cfg Config) (*Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return open(ctx, cfg, cfg.Database)
}

// OpenServer connects like Open but selects no database: the server's
// default one for the user. It is for CREATE DATABASE, which has to run
// before cfg.Database exists; Database reports "".
func OpenServer(ctx context.Context, cfg Config) (*Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return open(ctx, cfg, "")
}

func open(ctx context.Context, cfg Config, database string) (*Conn, error) {
	tlsConfig, err := cfg.TLS.Config()
	if err != nil {
		return nil, fielderr.Nest("TLS", err)
	}
	dc, err := clickhouse.Open(&clickhouse.Options{
		Protocol: clickhouse.Native,
		Addr:     cfg.Addr,
		Auth: clickhouse.Auth{
			Database: database,
			Username: cfg.Username,
			Password: cfg.Password.Reveal(),
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
	c := &Conn{conn: dc, cfg: cfg, database: database}
	if err := c.Ping(ctx); err != nil {
		_ = dc.Close()
		return nil, err
	}
	qctx, cancel := c.StatementContext(ctx)
	defer cancel()
	if err := dc.QueryRow(qctx, "SELECT version()").Scan(&c.version); err != nil {
		_ = dc.Close()
		return nil, fmt.Errorf("query ClickHouse version on %v: %w", cfg.Addr, err)
	}
	return c, nil
}

// Database is the database the connection is on: Config.Database, or "" for
// OpenServer. It is a plain identifier (Config.Validate).
func (c *Conn) Database() string { return c.database }

// Version is the version the server reported, e.g. "18.16.1" or "24.8.4.13".
func (c *Conn) Version() string { return c.version }

// StatementContext bounds one statement, including reading its result, by
// the statement timeout (CLICKHOUSE_INSERT_TIMEOUT).
func (c *Conn) StatementContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.cfg.StatementTimeout)
}

// Exec runs a statement that returns no rows.
func (c *Conn) Exec(ctx context.Context, query string, args ...any) error {
	return c.conn.Exec(ctx, query, args...)
}

// Query runs a query; the caller closes the rows.
func (c *Conn) Query(ctx context.Context, query string, args ...any) (driver.Rows, error) {
	return c.conn.Query(ctx, query, args...)
}

// QueryRow runs a query whose first row the caller scans.
func (c *Conn) QueryRow(ctx context.Context, query string, args ...any) driver.Row {
	return c.conn.QueryRow(ctx, query, args...)
}

// Insert prepares query (an INSERT naming its columns), lets fill append the
// rows and sends them, all within the statement timeout.
func (c *Conn) Insert(ctx context.Context, query string, fill func(driver.Batch) error) error {
	ctx, cancel := c.StatementContext(ctx)
	defer cancel()
	b, err := c.conn.PrepareBatch(ctx, query)
	if err != nil {
		return err
	}
	// Close ends the INSERT with no rows if fill fails; after Send it is a no-op.
	defer b.Close()
	if err := fill(b); err != nil {
		return err
	}
	return b.Send()
}

// PrepareBatch starts an INSERT whose rows the caller appends and sends.
func (c *Conn) PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	return c.conn.PrepareBatch(ctx, query, opts...)
}

// Ping checks that a server answers, within the dial timeout.
func (c *Conn) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	if err := c.conn.Ping(ctx); err != nil {
		return fmt.Errorf("ping ClickHouse %v: %w", c.cfg.Addr, err)
	}
	return nil
}

// Close closes the pool. Statements in flight fail.
func (c *Conn) Close() error {
	if err := c.conn.Close(); err != nil {
		return fmt.Errorf("close ClickHouse connection: %w", err)
	}
	return nil
}
