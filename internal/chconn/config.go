package chconn

import (
	"regexp"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/security"

	"github.com/usage-rollup/usage-rollup/internal/fielderr"
)

// Config is how to reach one ClickHouse database. Only cmd/consumer reads
// the environment; the variable named in each comment is the one Validate
// mentions. Password is a security.Secret, so a Config can be printed,
// encoded or logged whole.
type Config struct {
	// Addr lists host:port of ClickHouse native-protocol endpoints
	// (CLICKHOUSE_ADDR). The driver fails over between them in order.
	Addr []string
	// Database holds every table and view (CLICKHOUSE_DATABASE).
	Database string
	// Username and Password authenticate the native connection
	// (CLICKHOUSE_USERNAME, CLICKHOUSE_PASSWORD).
	Username string
	Password security.Secret
	// TLS speaks the native protocol over TLS (CLICKHOUSE_TLS_ENABLED,
	// CLICKHOUSE_TLS_CA_FILE, CLICKHOUSE_TLS_CERT_FILE, CLICKHOUSE_TLS_KEY_FILE):
	// point CLICKHOUSE_ADDR at the server's tcp_port_secure (usually 9440).
	TLS security.TLS
	// DialTimeout bounds connecting and the handshake, and each Ping
	// (CLICKHOUSE_DIAL_TIMEOUT).
	DialTimeout time.Duration
	// StatementTimeout bounds each statement sent over the connection: one
	// INSERT of one table, one migration statement, one query
	// (CLICKHOUSE_INSERT_TIMEOUT). A timed-out insert is transient and the
	// caller retries it; rewriting rows is harmless by design.
	StatementTimeout time.Duration
}

// Defaults. The dial timeout covers a TCP connect and the handshake on a
// healthy network with room for a slow TLS terminator; the statement timeout
// is far above the sub-second insert of a 20k-row batch so that only a
// stalled server trips it, and short enough that shutdown is not held up for
// long.
const (
	defaultDialTimeout      = 5 * time.Second
	defaultStatementTimeout = 30 * time.Second
)

// DefaultConfig returns the documented defaults: a local server, database
// usage_rollup, user default, no password, no TLS.
func DefaultConfig() Config {
	return Config{
		Addr:             []string{"127.0.0.1:9000"},
		Database:         "usage_rollup",
		Username:         "default",
		DialTimeout:      defaultDialTimeout,
		StatementTimeout: defaultStatementTimeout,
	}
}

// identifier is what a database name must be, so that it can be spliced into
// SQL backquoted without escaping rules.
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// IsIdentifier reports whether name can be spliced into SQL backquoted.
func IsIdentifier(name string) bool { return identifier.MatchString(name) }

// Validate reports the first invalid field as a *fielderr.Error. It reads no
// files and never includes the password.
func (c Config) Validate() error {
	switch {
	case len(c.Addr) == 0:
		return fielderr.New("Addr", "must list at least one host:port")
	case !IsIdentifier(c.Database):
		return fielderr.New("Database", "must be a plain identifier ([A-Za-z_][A-Za-z0-9_]*), got %q", c.Database)
	case c.Username == "":
		return fielderr.New("Username", "must not be empty")
	case c.DialTimeout <= 0:
		return fielderr.New("DialTimeout", "must be > 0, got %s", c.DialTimeout)
	case c.StatementTimeout <= 0:
		return fielderr.New("StatementTimeout", "must be > 0, got %s", c.StatementTimeout)
	}
	for i, a := range c.Addr {
		if a == "" {
			return fielderr.New("Addr", "entry %d is empty", i)
		}
	}
	return fielderr.Nest("TLS", c.TLS.Validate())
}
