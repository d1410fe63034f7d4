// Package schema makes a ClickHouse database fit the consumer before anything
// is written: it renders the migrations of schemas/clickhouse for the
// server's version, applies them, and records and checks each topic's row
// layout (the layout guard).
//
// The layout guard lives here rather than with the writer because, like the
// migrations, it is a check of the database against the configuration made
// once at start-up, it owns the usage_settings table the migrations create,
// and the writer never consults it: internal/sink trusts that it ran.
package schema

import (
	"context"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/rs/zerolog"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/chconn"
)

// Config is what the schema depends on besides the connection.
type Config struct {
	// Windows are the window sizes rolled up; each has its own table
	// usage_rollup_<name> and views usage_<name>, usage_cost_<name>
	// (ROLLUP_WINDOWS, shared with the aggregator and the sink).
	Windows []aggregate.Window
	// Now stamps schema_migrations.applied_at and usage_settings.created_at;
	// nil means time.Now. Tests pin it.
	Now func() time.Time
}

// Validate reports the first invalid field as a *fielderr.Error.
func (c Config) Validate() error {
	return aggregate.CheckWindows(c.Windows)
}

// Conn is the part of a ClickHouse connection (chconn.Conn) the schema uses.
type Conn interface {
	Exec(ctx context.Context, query string, args ...any) error
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
	QueryRow(ctx context.Context, query string, args ...any) driver.Row
	Insert(ctx context.Context, query string, fill func(driver.Batch) error) error
	StatementContext(ctx context.Context) (context.Context, context.CancelFunc)
	Database() string
	Version() string
}

var _ Conn = (*chconn.Conn)(nil)

// Schema migrates one database and guards its topics' row layouts. It is
// safe for concurrent use.
type Schema struct {
	conn     Conn
	cfg      Config
	log      zerolog.Logger
	database string // backquoted, ready for SQL
	// migrations are rendered once in New for the server's version.
	migrations []Migration
}

// New renders the migrations for the server c is connected to. It sends
// nothing to the server.
func New(c Conn, cfg Config, log zerolog.Logger) (*Schema, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	migrations, err := RenderMigrations(c.Version(), c.Database(), cfg.Windows)
	if err != nil {
		return nil, err
	}
	return &Schema{
		conn:       c,
		cfg:        cfg,
		log:        log.With().Str("component", "schema").Logger(),
		database:   "`" + c.Database() + "`",
		migrations: migrations,
	}, nil
}
