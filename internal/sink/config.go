package sink

import (
	"fmt"
	"regexp"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
)

// Config is the ClickHouse connection and schema configuration. Only
// cmd/consumer reads the environment; the variable named in each comment is
// the one Validate mentions.
type Config struct {
	// Addr lists host:port of ClickHouse native-protocol endpoints
	// (CLICKHOUSE_ADDR). The driver fails over between them in order.
	Addr []string
	// Database holds every table and view (CLICKHOUSE_DATABASE). It is created
	// if absent when Migrate is set.
	Database string
	// Username and Password authenticate the native connection
	// (CLICKHOUSE_USERNAME, CLICKHOUSE_PASSWORD). Config's String, Format and
	// MarshalZerologObject redact Password.
	Username string
	Password string
	// TLS speaks the native protocol over TLS (CLICKHOUSE_TLS_ENABLED): point
	// CLICKHOUSE_ADDR at the server's tcp_port_secure (usually 9440).
	TLS bool
	// TLSCAFile is a PEM bundle of the CAs that sign the server certificate
	// (CLICKHOUSE_TLS_CA_FILE). Empty means the system roots.
	TLSCAFile string
	// TLSCertFile and TLSKeyFile are the PEM client certificate and key for
	// mTLS (CLICKHOUSE_TLS_CERT_FILE, CLICKHOUSE_TLS_KEY_FILE): both or neither.
	TLSCertFile string
	TLSKeyFile  string
	// DialTimeout bounds connecting and the handshake (CLICKHOUSE_DIAL_TIMEOUT).
	DialTimeout time.Duration
	// InsertTimeout bounds each statement the sink sends: one INSERT of one
	// table, one migration statement, one settings query
	// (CLICKHOUSE_INSERT_TIMEOUT). A timed-out insert is transient and the
	// caller retries it; rewriting rows is harmless by design.
	InsertTimeout time.Duration
	// Migrate applies the schema migrations in Open (CLICKHOUSE_MIGRATE).
	// Turn it off where the service account may not run DDL and migrations
	// are applied out of band.
	Migrate bool
	// Windows are the window sizes rolled up; each has its own table
	// usage_rollup_<name> and view usage_<name> (ROLLUP_WINDOWS, shared with
	// the aggregator).
	Windows []aggregate.Window
}

// Defaults. The dial timeout covers a TCP connect and the handshake on a
// healthy network with room for a slow TLS terminator; the insert timeout is
// far above the sub-second insert of a 20k-row batch so that only a stalled
// server trips it, and short enough that shutdown is not held up for long.
const (
	defaultDialTimeout   = 5 * time.Second
	defaultInsertTimeout = 30 * time.Second
)

// DefaultConfig returns the documented defaults: a local server, database
// usage_rollup, user default, migrations on, and the aggregator's default windows.
func DefaultConfig() Config {
	return Config{
		Addr:          []string{"127.0.0.1:9000"},
		Database:      "usage_rollup",
		Username:      "default",
		DialTimeout:   defaultDialTimeout,
		InsertTimeout: defaultInsertTimeout,
		Migrate:       true,
		Windows:       aggregate.DefaultConfig().Windows,
	}
}

// identifier is what the sink accepts as a database name, so that it can be
// spliced into DDL backquoted without escaping rules.
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// windowName matches the canonical names aggregate.ParseWindow produces; they
// become part of table names.
var windowName = regexp.MustCompile(`^[0-9]+[smhd]$`)

// Validate reports the first invalid field, naming its environment variable.
func (c Config) Validate() error {
	switch {
	case len(c.Addr) == 0:
		return fmt.Errorf("CLICKHOUSE_ADDR must list at least one host:port")
	case !identifier.MatchString(c.Database):
		return fmt.Errorf("CLICKHOUSE_DATABASE must be a plain identifier ([A-Za-z_][A-Za-z0-9_]*), got %q", c.Database)
	case c.Username == "":
		return fmt.Errorf("CLICKHOUSE_USERNAME must not be empty")
	case c.DialTimeout <= 0:
		return fmt.Errorf("CLICKHOUSE_DIAL_TIMEOUT must be > 0, got %s", c.DialTimeout)
	case c.InsertTimeout <= 0:
		return fmt.Errorf("CLICKHOUSE_INSERT_TIMEOUT must be > 0, got %s", c.InsertTimeout)
	case len(c.Windows) == 0:
		return fmt.Errorf("ROLLUP_WINDOWS must list at least one window size")
	case !c.TLS && (c.TLSCAFile != "" || c.TLSCertFile != "" || c.TLSKeyFile != ""):
		return fmt.Errorf("CLICKHOUSE_TLS_CA_FILE, CLICKHOUSE_TLS_CERT_FILE and CLICKHOUSE_TLS_KEY_FILE need CLICKHOUSE_TLS_ENABLED=true")
	case (c.TLSCertFile == "") != (c.TLSKeyFile == ""):
		return fmt.Errorf("CLICKHOUSE_TLS_CERT_FILE and CLICKHOUSE_TLS_KEY_FILE must be set together (client certificate) or both left empty")
	}
	for i, a := range c.Addr {
		if a == "" {
			return fmt.Errorf("CLICKHOUSE_ADDR entry %d is empty", i)
		}
	}
	seen := make(map[string]bool, len(c.Windows))
	for _, w := range c.Windows {
		if !windowName.MatchString(w.Name) {
			return fmt.Errorf("ROLLUP_WINDOWS: window name %q is not canonical (like 1m or 1h)", w.Name)
		}
		if seen[w.Name] {
			return fmt.Errorf("ROLLUP_WINDOWS: window %s listed twice", w.Name)
		}
		seen[w.Name] = true
	}
	return nil
}
