package sink

import (
	"time"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
)

// Config is what the writer depends on besides the connection
// (chconn.Config). Only cmd/consumer reads the environment; the variable
// named in each comment is the one Validate mentions.
type Config struct {
	// Windows are the window sizes rolled up; each has its own table
	// usage_rollup_<name> (ROLLUP_WINDOWS, shared with the aggregator). A
	// batch for another window is refused before anything is sent.
	Windows []aggregate.Window
	// Now is the wall clock stamped into written_at, rejected_at and
	// advanced_at; nil means time.Now. Nothing that decides which row wins
	// depends on it. Tests pin it.
	Now func() time.Time
}

// DefaultConfig returns the aggregator's default windows and the wall clock.
func DefaultConfig() Config {
	return Config{Windows: aggregate.DefaultConfig().Windows}
}

// Validate reports the first invalid field as a *fielderr.Error.
func (c Config) Validate() error {
	return aggregate.CheckWindows(c.Windows)
}
