// Package audit reads back what the consumer wrote, for those who check it
// rather than serve analysts: the demo and the end-to-end tests compare the
// rollup with a generator's ground truth, `consumer reconcile` balances
// offsets written against offsets counted, and the fault suite does both.
// It only reads.
package audit

import (
	"context"
	"errors"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/chconn"
)

// Conn is the part of a ClickHouse connection (chconn.Conn) the reader uses.
type Conn interface {
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
	QueryRow(ctx context.Context, query string, args ...any) driver.Row
	StatementContext(ctx context.Context) (context.Context, context.CancelFunc)
	Database() string
}

var _ Conn = (*chconn.Conn)(nil)

// ErrUnknownWindow is returned, wrapped, for a window that is not one of the
// reader's: its name would be spliced into a view name.
var ErrUnknownWindow = errors.New("not a configured window")

// Reader reads one database's rollups. It is safe for concurrent use and
// does not own the connection.
type Reader struct {
	conn     Conn
	database string // backquoted, ready for SQL
	// windows holds the names of the configured windows, true for the
	// canonical ones: the only strings spliced into SQL as part of a view name.
	windows map[string]bool
}

// New returns a reader over c for the configured windows (ROLLUP_WINDOWS of
// the consumer that wrote the database).
func New(c Conn, windows []aggregate.Window) *Reader {
	r := &Reader{conn: c, database: "`" + c.Database() + "`", windows: make(map[string]bool, len(windows))}
	for _, w := range windows {
		r.windows[w.Name] = aggregate.IsWindowName(w.Name)
	}
	return r
}
