package sink

import (
	"context"
	"fmt"
	"time"
)

// Migrate creates the database if needed and applies, in order, every
// migration not yet recorded in schema_migrations, recording each after all
// its statements ran. Every statement is idempotent, so replicas migrating at
// once, or a migration interrupted before it was recorded, are harmless: the
// worst case is a migration recorded twice. Adding a window later applies the
// window templates for the new window only.
func (s *Sink) Migrate(ctx context.Context) error {
	if err := s.exec(ctx, "CREATE DATABASE IF NOT EXISTS "+s.database); err != nil {
		return fmt.Errorf("create database %s: %w", s.cfg.Database, err)
	}
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
func (s *Sink) exec(ctx context.Context, stmt string) error {
	ctx, cancel := s.statementContext(ctx)
	defer cancel()
	err := s.conn.Exec(ctx, stmt)
	if isAlreadyExists(err) || isDuplicateColumn(err) {
		s.log.Debug().Err(err).Msg("object created concurrently or earlier by another migrator")
		return nil
	}
	return err
}

func (s *Sink) appliedMigrations(ctx context.Context) (map[string]bool, error) {
	ctx, cancel := s.statementContext(ctx)
	defer cancel()
	applied := map[string]bool{}
	// Before the first migration schema_migrations does not exist; asking
	// system.tables first keeps that expected case out of the server's error log.
	var exists uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = 'schema_migrations'",
		s.cfg.Database).Scan(&exists); err != nil {
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

func (s *Sink) recordMigration(ctx context.Context, m Migration) error {
	ctx, cancel := s.statementContext(ctx)
	defer cancel()
	err := s.insert(ctx, "INSERT INTO "+s.database+".schema_migrations (version, name, applied_at)",
		func(b batch) error { return b.Append(m.Version, m.Name, now()) })
	if err != nil {
		return fmt.Errorf("record migration %s: %w", m.Name, err)
	}
	return nil
}
