// Package schemas is the one source of the ClickHouse DDL and analyst views,
// and holds the JSON Schema of a usage event (event.schema.json).
//
// Migrations live in clickhouse/ as NNNN_name.sql, applied in NNNN order by
// internal/schema. A file named NNNN_name.window.sql is a template applied once
// per configured window size. Placeholders, replaced before execution:
//
//	{{database}}   the target database, already backquoted: `usage`
//	{{window}}     the canonical window name, e.g. 1m or 1h (window files only)
//	{{dimension}}  the column type of the low-cardinality dimensions:
//	               LowCardinality(String) on ClickHouse >= 20.1, String before
//	{{counter}}    UInt64 CODEC(T64, LZ4) on servers with column codecs,
//	               UInt64 before
//	{{time}}       DateTime('UTC') CODEC(DoubleDelta, LZ4), or DateTime('UTC')
//	{{add_column}} ADD COLUMN IF NOT EXISTS on ClickHouse >= 20.1; ADD COLUMN
//	               on 18.16, whose "column already exists" the runner accepts
//
// Statements are separated by semicolons; -- comments are dropped. Every
// statement must be idempotent (CREATE ... IF NOT EXISTS) because several
// replicas may migrate at once. docs/schema.md describes the tables.
package schemas

import "embed"

// ClickHouse holds the migration files under clickhouse/.
//
//go:embed clickhouse/*.sql
var ClickHouse embed.FS

// EventSchema is event.schema.json: the JSON Schema (draft 2020-12) of one
// usage event, for producer-side checks. The decoder in internal/events is
// the contract's implementation; its tests validate every golden payload
// against this schema, and docs/event-contract.md lists the rules only the
// decoder can check.
//
//go:embed event.schema.json
var EventSchema []byte
