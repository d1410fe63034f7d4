package schema

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/rs/zerolog"

	"github.com/usage-rollup/usage-rollup/internal/chconn"
)

// CreateDatabase creates cfg.Database if it does not exist. It runs over its
// own connection to the server's default database (chconn.OpenServer),
// because the handshake of a connection to cfg.Database fails until it
// exists; a replica creating it at the same moment is harmless.
func CreateDatabase(ctx context.Context, cfg chconn.Config) error {
	c, err := chconn.OpenServer(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := c.StatementContext(ctx)
	defer cancel()
	if err := c.Exec(ctx, "CREATE DATABASE IF NOT EXISTS `"+cfg.Database+"`"); err != nil && !isAlreadyExists(err) {
		return fmt.Errorf("create database %s on %v: %w", cfg.Database, cfg.Addr, err)
	}
	return nil
}

// Migrate applies, in order, every migration not yet recorded in
// schema_migrations, recording each after all its statements ran. Every
// statement is idempotent, so replicas migrating at once, or a migration
// interrupted before it was recorded, are harmless: the worst case is a
// migration recorded twice. Adding a window later applies the window
// templates for the new window only. The database must exist (CreateDatabase).
func (s *Schema) Migrate(ctx context.Context) error {
	applied, err := s.appliedMigrations(ctx)
	if err != nil {
		return err
	}
	for _, m := range s.migrations {
		if applied[m.Name] {
			continue
		}
		start := time.Now()
		for i, stmt := range m.Statements {
			if err := s.exec(ctx, stmt); err != nil {
				return fmt.Errorf("migration %s statement %d: %w", m.Name, i+1, err)
			}
		}
		if err := s.recordMigration(ctx, m); err != nil {
			return err
		}
		s.log.Info().Str("migration", m.Name).Dur("took", time.Since(start)).Msg("applied migration")
	}
	return nil
}

// exec runs one DDL statement within the statement timeout. A concurrent
// creator winning the race of an IF NOT EXISTS counts as success, and so does
// a column that exists already: 18.16 has no ADD COLUMN IF NOT EXISTS, so a
// re-run or a replica migrating at the same time gets that error instead.
//
// A table missing for a moment is retried a few times: another migrator may
// be between the DROP and the CREATE of a view this statement refers to.
func (s *Schema) exec(ctx context.Context, stmt string) error {
	err := s.execOnce(ctx, stmt)
	for attempt := 0; attempt < unknownTableRetries && isUnknownTable(err); attempt++ {
		select {
		case <-ctx.Done():
			return err
		case <-time.After(unknownTableBackoff):
		}
		err = s.execOnce(ctx, stmt)
	}
	return err
}

// A view is re-created within milliseconds; 10 x 200ms covers a loaded
// server, and a table that really is missing still fails within 2s.
const (
	unknownTableRetries = 10
	unknownTableBackoff = 200 * time.Millisecond
)

func (s *Schema) execOnce(ctx context.Context, stmt string) error {
	ctx, cancel := s.conn.StatementContext(ctx)
	defer cancel()
	err := s.conn.Exec(ctx, stmt)
	if isAlreadyExists(err) || isDuplicateColumn(err) {
		s.log.Debug().Err(err).Msg("object created concurrently or earlier by another migrator")
		return nil
	}
	return err
}

func (s *Schema) appliedMigrations(ctx context.Context) (map[string]bool, error) {
	ctx, cancel := s.conn.StatementContext(ctx)
	defer cancel()
	applied := map[string]bool{}
	// Before the first migration schema_migrations does not exist; asking
	// system.tables first keeps that expected case out of the server's error log.
	var exists uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = 'schema_migrations'",
		s.conn.Database()).Scan(&exists); err != nil {
		return nil, fmt.Errorf("look up schema_migrations: %w", err)
	}
	if exists == 0 {
		return applied, nil
	}
	rows, err := s.conn.Query(ctx, "SELECT DISTINCT name FROM "+s.database+".schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		applied[name] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return applied, nil
}

func (s *Schema) recordMigration(ctx context.Context, m Migration) error {
	err := s.conn.Insert(ctx, "INSERT INTO "+s.database+".schema_migrations (version, name, applied_at)",
		func(b driver.Batch) error { return b.Append(m.Version, m.Name, s.cfg.Now()) })
	if err != nil {
		return fmt.Errorf("record migration %s: %w", m.Name, err)
	}
	return nil
}

// Setup creates cc.Database if needed, connects to it and applies the
// migrations: the start-up of a consumer with CLICKHOUSE_MIGRATE=true, and
// what the demo and the tests do before writing or reading. The caller
// closes the connection.
func Setup(ctx context.Context, cc chconn.Config, cfg Config, log zerolog.Logger) (*chconn.Conn, *Schema, error) {
	if err := CreateDatabase(ctx, cc); err != nil {
		return nil, nil, err
	}
	c, err := chconn.Open(ctx, cc)
	if err != nil {
		return nil, nil, err
	}
	s, err := New(c, cfg, log)
	if err == nil {
		err = s.Migrate(ctx)
	}
	if err != nil {
		_ = c.Close()
		return nil, nil, err
	}
	return c, s, nil
}
