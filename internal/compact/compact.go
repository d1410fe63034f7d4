// Package compact folds the raw pieces of closed windows into one row per
// (window, dimensions), so that analysts read about one row per group instead
// of one per (partition, chunk, segment) piece (issue #9), and removes the
// folded raw pieces. It never changes what sum() over usage_<window> returns.
//
// A run, for each window size:
//
//  1. plan: every closed window (it ends at or before
//     usage_progress_topic.closed_through) with complete raw pieces (their
//     chunk is below the partition's newest chunk in usage_chunks, or their
//     segment below that chunk's open segment: a seal record or the group
//     cap ended it) that the window's newest manifest has not folded yet;
//  2. write the compact rows of compaction k+1 = the compact rows of the
//     newest manifest k + the raw pieces between k's frontier and the new one
//     (INSERT ... SELECT ... GROUP BY);
//  3. after Settle, publish the manifests (usage_compactions), fenced by the
//     server clock so that nothing is published after start + MaxRun;
//  4. after Settle, delete the raw pieces below manifests that have been the
//     newest for longer than MaxRun + Settle (ALTER TABLE ... DELETE).
//
// docs/design.md ("Compaction") argues why each step keeps the sums exact
// with crashes, concurrent compactors, late events and replays.
package compact

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/rs/zerolog"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/chconn"
	"github.com/usage-rollup/usage-rollup/internal/fielderr"
)

// Config is what a compaction run depends on besides the connection.
type Config struct {
	// Windows are the window sizes to compact (ROLLUP_WINDOWS).
	Windows []aggregate.Window
	// Topic is the topic whose windows are compacted (KAFKA_TOPIC).
	Topic string
	// BatchWindows is how many windows one INSERT ... SELECT folds
	// (COMPACT_BATCH_WINDOWS): each INSERT creates a part per month, so
	// folding windows one by one would flood the table with parts, while the
	// statement grows by about 200 bytes per window.
	BatchWindows int
	// MaxWindows bounds the windows compacted per window size and run
	// (COMPACT_MAX_WINDOWS), so that a first run over a long history is cut
	// into runs of bounded length; the rest waits for the next run.
	MaxWindows int
	// Settle is the pause between writing compact rows and publishing their
	// manifests, and between publishing and deleting raw pieces
	// (COMPACT_SETTLE). A query snapshots each table's parts when it starts
	// reading it; the pause makes sure the snapshots of one query, taken
	// milliseconds apart, cannot see a manifest without its compact rows, or
	// a deletion without the manifest that excludes the deleted pieces.
	Settle time.Duration
	// MaxRun is the longest a run may take from reading a manifest to
	// publishing the next one (COMPACT_MAX_RUN); later manifests are refused
	// by the server. Raw pieces are deleted only below manifests older than
	// MaxRun + Settle, when no running compactor can still build on an older one.
	MaxRun time.Duration
	// Delete enables the deletion of folded raw pieces (COMPACT_DELETE).
	Delete bool
	// WaitDeletes makes a run wait until its deletions (asynchronous
	// mutations) finished, bounded by the context (COMPACT_WAIT_DELETES).
	WaitDeletes bool
}

// DefaultConfig returns the defaults documented in README.md.
func DefaultConfig() Config {
	return Config{
		Topic:        "usage-events",
		BatchWindows: 200,
		MaxWindows:   20000,
		Settle:       5 * time.Second,
		MaxRun:       5 * time.Minute,
		Delete:       true,
		WaitDeletes:  false,
	}
}

// Validate reports the first invalid field, naming its environment variable.
func (c Config) Validate() error {
	switch {
	case c.Topic == "":
		return fielderr.New("Topic", "must not be empty")
	case c.BatchWindows < 1 || c.BatchWindows > 2000:
		return fielderr.New("BatchWindows", "must be in [1, 2000], got %d", c.BatchWindows)
	case c.MaxWindows < 1:
		return fielderr.New("MaxWindows", "must be positive, got %d", c.MaxWindows)
	case c.Settle < 0:
		return fielderr.New("Settle", "must not be negative, got %s", c.Settle)
	case c.MaxRun < time.Second || c.MaxRun <= c.Settle:
		return fielderr.New("MaxRun", "must be at least 1s and longer than {Settle}, got %s", c.MaxRun)
	}
	return aggregate.CheckWindows(c.Windows)
}

// Conn is the part of a ClickHouse connection (chconn.Conn) the compactor uses.
type Conn interface {
	Exec(ctx context.Context, query string, args ...any) error
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
	QueryRow(ctx context.Context, query string, args ...any) driver.Row
	PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error)
	StatementContext(ctx context.Context) (context.Context, context.CancelFunc)
	Database() string
}

var _ Conn = (*chconn.Conn)(nil)

// Compactor compacts one database's windows of one topic. It does not own
// the connection.
type Compactor struct {
	conn     Conn
	cfg      Config
	log      zerolog.Logger
	database string // backquoted
	// sleep waits between phases; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
}

// New returns a compactor over c. It sends nothing to the server.
func New(c Conn, cfg Config, log zerolog.Logger) (*Compactor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Compactor{
		conn: c, cfg: cfg, log: log.With().Str("component", "compact").Logger(),
		database: "`" + c.Database() + "`", sleep: sleepCtx,
	}, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Result is what one run did for one window size.
type Result struct {
	Window string `json:"window"`
	// Compacted is the number of windows whose manifest this run published.
	Compacted int `json:"windows_compacted"`
	// Folded is the number of raw rows (physical, before FINAL) the published
	// compactions folded.
	Folded uint64 `json:"raw_rows_folded"`
	// Deleted is the number of raw rows this run's deletions remove.
	Deleted uint64 `json:"raw_rows_deleted"`
	// Uncompacted counts closed windows still holding unfolded pieces of
	// complete pieces after the run, OldestUncompacted the oldest of them
	// (zero when none).
	Uncompacted       int       `json:"uncompacted_windows"`
	OldestUncompacted time.Time `json:"oldest_uncompacted"`
}

// Run compacts every window size once: plan, write, publish, then delete.
// It returns one Result per window size, also when it fails part way (the
// error says where); whatever it did is harmless to leave as it is.
func (c *Compactor) Run(ctx context.Context) ([]Result, error) {
	start, err := c.serverNow(ctx)
	if err != nil {
		return nil, err
	}
	deadline := start.Add(c.cfg.MaxRun)
	results := make([]Result, len(c.cfg.Windows))
	plans := make([][]plan, len(c.cfg.Windows))
	for i, w := range c.cfg.Windows {
		results[i].Window = w.Name
		p, err := c.plan(ctx, w)
		if err != nil {
			return results, err
		}
		if err := c.writeRows(ctx, w, p); err != nil {
			return results, err
		}
		plans[i] = p
	}
	if err := c.sleep(ctx, c.cfg.Settle); err != nil {
		return results, err
	}
	for i, w := range c.cfg.Windows {
		if err := c.publish(ctx, w, plans[i], deadline); err != nil {
			return results, err
		}
		results[i].Compacted = len(plans[i])
		for _, p := range plans[i] {
			results[i].Folded += p.rawRows
		}
	}
	if c.cfg.Delete {
		if err := c.sleep(ctx, c.cfg.Settle); err != nil {
			return results, err
		}
		for i, w := range c.cfg.Windows {
			n, err := c.deleteFolded(ctx, w)
			if err != nil {
				return results, err
			}
			results[i].Deleted = n
		}
		if c.cfg.WaitDeletes {
			if err := c.waitMutations(ctx); err != nil {
				return results, err
			}
		}
	}
	for i, w := range c.cfg.Windows {
		n, oldest, err := c.uncompacted(ctx, w)
		if err != nil {
			return results, err
		}
		results[i].Uncompacted, results[i].OldestUncompacted = n, oldest
	}
	return results, nil
}

// serverNow reads the server clock: fences and ages are measured on it, so
// that a compactor's own clock cannot make it publish or delete too late.
func (c *Compactor) serverNow(ctx context.Context) (time.Time, error) {
	ctx, cancel := c.conn.StatementContext(ctx)
	defer cancel()
	var now time.Time
	if err := c.conn.QueryRow(ctx, "SELECT now()").Scan(&now); err != nil {
		return time.Time{}, fmt.Errorf("read server clock: %w", err)
	}
	return now.UTC(), nil
}
