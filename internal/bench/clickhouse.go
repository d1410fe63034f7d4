package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// statementTimeout bounds one statement: DDL, a count, an analyst query or a
// 100k-row insert all finish in seconds on the benchmark's data.
const statementTimeout = 2 * time.Minute

// ClickHouse is a native-protocol connection to the server (clickhouse-go's
// HTTP protocol does not work against 18.16).
type ClickHouse struct {
	conn driver.Conn
}

// OpenClickHouse connects to addr (host:port of the native protocol).
func OpenClickHouse(ctx context.Context, addr string) (*ClickHouse, error) {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Protocol:    clickhouse.Native,
		Addr:        []string{addr},
		DialTimeout: 5 * time.Second,
		// Raw rows repeat their dimension values: LZ4 shrinks inserts
		// several-fold, as it does for the service's sink.
		Compression: &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
		ClientInfo: clickhouse.ClientInfo{
			Products: []struct{ Name, Version string }{{Name: "usage-rollup-bench", Version: "1"}},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("open ClickHouse %s: %w", addr, err)
	}
	c := &ClickHouse{conn: conn}
	if err := c.conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("ping ClickHouse %s: %w", addr, err)
	}
	return c, nil
}

// Close closes the connection pool.
func (c *ClickHouse) Close() error { return c.conn.Close() }

// Exec runs one statement.
func (c *ClickHouse) Exec(ctx context.Context, query string) error {
	ctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	if err := c.conn.Exec(ctx, query); err != nil {
		return fmt.Errorf("%s: %w", firstLine(query), err)
	}
	return nil
}

// ExecAll runs statements in order.
func (c *ClickHouse) ExecAll(ctx context.Context, queries ...string) error {
	for _, q := range queries {
		if err := c.Exec(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// Uints runs a query returning one row of unsigned integers and scans it.
func (c *ClickHouse) Uints(ctx context.Context, query string, dest ...*uint64) error {
	ctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	args := make([]any, len(dest))
	for i, d := range dest {
		args[i] = d
	}
	if err := c.conn.QueryRow(ctx, query).Scan(args...); err != nil {
		return fmt.Errorf("%s: %w", firstLine(query), err)
	}
	return nil
}

// Version returns the server version, e.g. "18.16.1".
func (c *ClickHouse) Version(ctx context.Context) (string, error) {
	var v string
	if err := c.conn.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		return "", fmt.Errorf("query version: %w", err)
	}
	return v, nil
}

// strings returns the first column of every row of query.
func (c *ClickHouse) strings(ctx context.Context, query string, args ...any) ([]string, error) {
	var out []string
	err := c.eachRow(ctx, query, args, func(rows driver.Rows) error {
		var s string
		if err := rows.Scan(&s); err != nil {
			return err
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// eachRow runs query, within statementTimeout, and calls scan on each row it
// returns.
func (c *ClickHouse) eachRow(ctx context.Context, query string, args []any, scan func(driver.Rows) error) error {
	ctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	rows, err := c.conn.Query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", firstLine(query), err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return fmt.Errorf("scan %s: %w", firstLine(query), err)
		}
	}
	return rows.Err()
}

// DropWithPrefix drops the databases whose names start with prefix: what
// earlier runs left for inspection. On 18.16 DROP DATABASE fails while a
// Kafka table or a view reading it remains, so views go first, then Kafka
// tables, then the database.
func (c *ClickHouse) DropWithPrefix(ctx context.Context, prefix string) ([]string, error) {
	dbs, err := c.strings(ctx, "SELECT name FROM system.databases WHERE startsWith(name, ?) ORDER BY name", prefix)
	if err != nil {
		return nil, err
	}
	for _, db := range dbs {
		for _, engine := range []string{"MaterializedView", "Kafka"} {
			tables, err := c.strings(ctx, "SELECT name FROM system.tables WHERE database = ? AND engine = ?", db, engine)
			if err != nil {
				return nil, err
			}
			for _, t := range tables {
				if err := c.Exec(ctx, "DROP TABLE IF EXISTS "+quote(db)+"."+quote(t)); err != nil {
					return nil, err
				}
			}
		}
		if err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+quote(db)); err != nil {
			return nil, err
		}
	}
	return dbs, nil
}

// DiskBytes is the size of a database's active parts on disk.
func (c *ClickHouse) DiskBytes(ctx context.Context, db string) (uint64, error) {
	var n uint64
	ctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	err := c.conn.QueryRow(ctx, "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = ? AND active", db).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("disk bytes of %s: %w", db, err)
	}
	return n, nil
}

// mergeSettle bounds how long WaitMerges waits. Background merges of one
// pipeline's tables would otherwise be charged to the next pipeline's
// ClickHouse CPU; they finish within seconds at these sizes.
const mergeSettle = 60 * time.Second

// WaitMerges waits until no merge runs in the databases starting with prefix,
// or mergeSettle passed. It reports whether merges settled.
func (c *ClickHouse) WaitMerges(ctx context.Context, prefix string) (bool, error) {
	deadline := time.Now().Add(mergeSettle)
	for {
		var n uint64
		if err := c.Uints(ctx, "SELECT count() FROM system.merges WHERE startsWith(database, '"+prefix+"')", &n); err != nil {
			return false, err
		}
		if n == 0 {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// quote backquotes an identifier.
func quote(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }

func firstLine(q string) string {
	q = strings.TrimSpace(q)
	if i := strings.IndexByte(q, '\n'); i >= 0 {
		q = q[:i] + " ..."
	}
	return q
}
