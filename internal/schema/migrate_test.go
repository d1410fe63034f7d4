package schema

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/chconn"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/servicetest"
)

// objectsPerWindow are usage_rollup_<w>, usage_<w> and usage_cost_<w>; the
// fixed objects are schema_migrations, usage_settings, usage_chunks,
// usage_chunk_progress, usage_rejected_log, usage_rejected,
// usage_progress_log, usage_progress, usage_progress_topic, usage_prices,
// usage_compactions and usage_compaction_runs; per window usage_rollup_<w>,
// usage_<w>, usage_cost_<w> and usage_compact_<w>.
const (
	fixedObjects     = 12
	objectsPerWindow = 4
)

func countTables(t *testing.T, s *Schema) uint64 {
	t.Helper()
	return servicetest.QueryUint(t, s.conn, "SELECT count() FROM system.tables WHERE database = ?", s.conn.Database())
}

func TestMigrateConcurrentOnFreshDatabase(t *testing.T) {
	cfg := testConfig(t)
	windows := []aggregate.Window{w1m, w1h}
	// Four replicas start at once against a database that does not exist yet.
	const replicas = 4
	var (
		wg   sync.WaitGroup
		errs [replicas]error
	)
	for i := range replicas {
		wg.Go(func() {
			var c *chconn.Conn
			if c, _, errs[i] = Setup(t.Context(), cfg, Config{Windows: windows}, zerolog.New(zerolog.NewTestWriter(t))); errs[i] == nil {
				_ = c.Close()
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: Setup: %v", i, err)
		}
	}
	s := openSchema(t, cfg, windows...)
	if got, want := countTables(t, s), uint64(fixedObjects+objectsPerWindow*len(windows)); got != want {
		t.Errorf("tables and views = %d, want %d", got, want)
	}
	if got := servicetest.QueryUint(t, s.conn, "SELECT uniqExact(name) FROM "+s.database+".schema_migrations"); got != uint64(len(s.migrations)) {
		t.Errorf("distinct recorded migrations = %d, want %d", got, len(s.migrations))
	}
}

func TestMigrateIdempotent(t *testing.T) {
	s := newTestSchema(t)
	recorded := servicetest.QueryUint(t, s.conn, "SELECT count() FROM "+s.database+".schema_migrations")

	// Migrate from four goroutines at once on a migrated database, then again.
	var (
		wg   sync.WaitGroup
		errs [4]error
	)
	for i := range errs {
		wg.Go(func() { errs[i] = s.Migrate(t.Context()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("goroutine %d: Migrate: %v", i, err)
		}
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	if got := servicetest.QueryUint(t, s.conn, "SELECT count() FROM "+s.database+".schema_migrations"); got != recorded {
		t.Errorf("schema_migrations grew from %d to %d rows on re-running applied migrations", recorded, got)
	}
}

func TestMigrateForgottenRecordIsHarmless(t *testing.T) {
	// A replica killed between a migration's DDL and its record re-runs the
	// DDL on the next start; IF NOT EXISTS makes that a no-op.
	s := newTestSchema(t)
	if err := s.conn.Exec(t.Context(), "DROP TABLE "+s.database+".schema_migrations"); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate after losing schema_migrations: %v", err)
	}
	if got := servicetest.QueryUint(t, s.conn, "SELECT uniqExact(name) FROM "+s.database+".schema_migrations"); got != uint64(len(s.migrations)) {
		t.Errorf("distinct recorded migrations = %d, want %d", got, len(s.migrations))
	}
}

func TestMigrateAddsWindow(t *testing.T) {
	cfg := testConfig(t)
	s := openSchema(t, cfg, w1m, w1h)
	openSchema(t, cfg, aggregate.Window{Size: 5 * time.Minute, Name: "5m"}, w1m, w1h)
	if got, want := countTables(t, s), uint64(fixedObjects+objectsPerWindow*3); got != want {
		t.Errorf("tables and views = %d, want %d", got, want)
	}
	if got := servicetest.QueryUint(t, s.conn, "SELECT count() FROM "+s.database+".schema_migrations WHERE name = '0005_usage_rollup@5m'"); got != 1 {
		t.Errorf("0005_usage_rollup@5m recorded %d times, want 1", got)
	}
}

func TestMigrateUpgradesUsageSettings(t *testing.T) {
	// A database migrated before 0012, holding a layout row, upgraded by four
	// replicas at once: 18.16 has no ADD COLUMN IF NOT EXISTS, so all but one
	// see "column already exists", which must count as success.
	s := newTestSchema(t)
	ctx := t.Context()
	for _, stmt := range []string{
		"ALTER TABLE " + s.database + ".usage_settings DROP COLUMN segment_inputs",
		"ALTER TABLE " + s.database + ".usage_settings DROP COLUMN layout_version",
		"INSERT INTO " + s.database + ".usage_settings (topic, chunk_size, max_groups, created_at) " +
			"SELECT '" + testTopic + "', 50000, 200000, now()",
		"DROP TABLE " + s.database + ".schema_migrations",
	} {
		if err := s.conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	var (
		wg   sync.WaitGroup
		errs [4]error
	)
	for i := range errs {
		wg.Go(func() { errs[i] = s.Migrate(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: Migrate: %v", i, err)
		}
	}
	// The old row reads as legacy: only the group cap is compared.
	if err := s.EnsureLayout(ctx, testTopic, NewLayout(50_000, 200_000, []string{"1m"}, time.Hour, 100)); err != nil {
		t.Errorf("EnsureLayout on the upgraded legacy row: %v", err)
	}
	err := s.EnsureLayout(ctx, testTopic, NewLayout(50_000, 100_000, []string{"1m", "1h"}, time.Hour, 100))
	if !errors.Is(err, ErrLayoutChanged) || !strings.Contains(err.Error(), "MAX_GROUPS_PER_PARTITION changed from 200000 to 100000") {
		t.Errorf("EnsureLayout with another group cap on the upgraded legacy row = %v, want it refused", err)
	}
}
