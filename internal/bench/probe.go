package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// probeTable is the Memory table the insert probe's views write to. Memory,
// not TinyLog: several partitions of a consumer may insert into the probed
// tables at the same moment, and TinyLog has no locking for concurrent writes.
const probeTable = "bench_insert_probe"

// ProbedTables are the consumer's tables whose INSERTs the steady benchmark
// counts: every table the consumer writes while it runs.
var ProbedTables = []string{"usage_rollup_1m", "usage_rollup_1h", "usage_chunks", "usage_rejected_log", "usage_progress_log"}

// CreateInsertProbe counts INSERT blocks into tables of db: a materialized
// view per table runs its SELECT once per inserted block (before the block is
// split into parts by partition), so each INSERT of the consumer adds one row
// to probeTable. The technique of internal/sink's split test: 18.16 has
// neither query_log nor part_log unless configured.
func (c *ClickHouse) CreateInsertProbe(ctx context.Context, db string, tables []string) error {
	stmts := []string{"CREATE TABLE " + quote(db) + "." + probeTable + " (tbl String, rows UInt64, at DateTime) ENGINE = Memory"}
	for _, t := range tables {
		stmts = append(stmts, fmt.Sprintf("CREATE MATERIALIZED VIEW %[1]s.%[2]s TO %[1]s.%[3]s AS "+
			"SELECT '%[4]s' AS tbl, count() AS rows, now() AS at FROM %[1]s.%[5]s",
			quote(db), quote("bench_probe_"+t), probeTable, t, quote(t)))
	}
	return c.ExecAll(ctx, stmts...)
}

// InsertCounts returns the INSERT blocks the probe has seen, per table.
func (c *ClickHouse) InsertCounts(ctx context.Context, db string) (map[string]uint64, error) {
	return c.countsByTable(ctx, "SELECT tbl, count() FROM "+quote(db)+"."+probeTable+" GROUP BY tbl")
}

// BlockNumbers returns, per MergeTree table of db, the highest block number
// any of its parts covers. A non-replicated MergeTree takes a new block
// number for every part an INSERT creates (one per partition the block
// touches), and a merge's part covers its sources' range without taking one,
// so the difference between two readings is the parts INSERTs created in
// between. (Mutations would take numbers too; the consumer runs none.)
// VerifyMergesKeepBlockNumbers checks the merge half on the server itself.
func (c *ClickHouse) BlockNumbers(ctx context.Context, db string) (map[string]uint64, error) {
	return c.countsByTable(ctx, "SELECT table, toUInt64(max(max_block_number)) FROM system.parts WHERE database = ? GROUP BY table", db)
}

// Counters reads InsertCounts and BlockNumbers in one query, so that both
// describe about the same moment: read one after the other, on a server
// busy with dozens of INSERTs a second, they drift apart by the second
// query's latency, which differs from one reading to the next.
func (c *ClickHouse) Counters(ctx context.Context, db string) (inserts, blocks map[string]uint64, err error) {
	query := "SELECT table, blocks, inserts FROM " +
		"(SELECT table, toUInt64(max(max_block_number)) AS blocks FROM system.parts WHERE database = ? GROUP BY table) " +
		"ANY LEFT JOIN (SELECT tbl AS table, count() AS inserts FROM " + quote(db) + "." + probeTable + " GROUP BY tbl) USING table"
	inserts, blocks = map[string]uint64{}, map[string]uint64{}
	err = c.eachRow(ctx, query, []any{db}, func(rows driver.Rows) error {
		var (
			t    string
			b, i uint64
		)
		if err := rows.Scan(&t, &b, &i); err != nil {
			return err
		}
		blocks[t], inserts[t] = b, i
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return inserts, blocks, nil
}

// ActiveParts returns the number of active parts per table of db.
func (c *ClickHouse) ActiveParts(ctx context.Context, db string) (map[string]uint64, error) {
	return c.countsByTable(ctx, "SELECT table, count() FROM system.parts WHERE database = ? AND active GROUP BY table", db)
}

// countsByTable runs a query returning (table, UInt64) rows.
func (c *ClickHouse) countsByTable(ctx context.Context, query string, args ...any) (map[string]uint64, error) {
	out := map[string]uint64{}
	err := c.eachRow(ctx, query, args, func(rows driver.Rows) error {
		var (
			t string
			n uint64
		)
		if err := rows.Scan(&t, &n); err != nil {
			return err
		}
		out[t] = n
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// MergeCheck is what VerifyMergesKeepBlockNumbers saw on one table.
type MergeCheck struct {
	Table string
	// Inserts is the INSERT blocks the probe saw over the whole run.
	Inserts                   uint64
	PartsBefore, PartsAfter   uint64
	BlocksBefore, BlocksAfter uint64
}

// OK reports whether the merge took no block number.
func (m MergeCheck) OK() bool { return m.BlocksBefore == m.BlocksAfter }

// VerifyMergesKeepBlockNumbers reads table's INSERT count (the probe's, over
// the whole run), active parts and highest block number, merges it
// (OPTIMIZE ... FINAL) and reads parts and block number again. With no
// INSERT running, the block number must stay while the parts collapse; and
// when every INSERT made one part, it equals the INSERT count, however many
// merges ran before.
func (c *ClickHouse) VerifyMergesKeepBlockNumbers(ctx context.Context, db, table string) (MergeCheck, error) {
	m := MergeCheck{Table: table}
	inserts, err := c.InsertCounts(ctx, db)
	if err != nil {
		return m, err
	}
	m.Inserts = inserts[table]
	read := func(parts, blocks *uint64) error {
		p, err := c.ActiveParts(ctx, db)
		if err != nil {
			return err
		}
		b, err := c.BlockNumbers(ctx, db)
		if err != nil {
			return err
		}
		*parts, *blocks = p[table], b[table]
		return nil
	}
	if err := read(&m.PartsBefore, &m.BlocksBefore); err != nil {
		return m, err
	}
	if err := c.Exec(ctx, "OPTIMIZE TABLE "+quote(db)+"."+quote(table)+" FINAL"); err != nil {
		return m, err
	}
	// OPTIMIZE returns when the merge is done; the replaced parts turn
	// inactive at once, so one reading suffices. A short pause covers a
	// server that reports them a moment later.
	time.Sleep(100 * time.Millisecond)
	return m, read(&m.PartsAfter, &m.BlocksAfter)
}
