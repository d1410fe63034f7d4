package schema

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/chconn"
	"github.com/usage-rollup/usage-rollup/schemas"
)

// Migration is one rendered migration: a file of schemas/clickhouse, or one
// window's instance of a window template.
type Migration struct {
	// Version is the NNNN prefix of the file name.
	Version uint32 `json:"version"`
	// Name identifies the migration in schema_migrations: the file name
	// without .sql, and for a window template without .window plus "@<window>",
	// e.g. 0005_usage_rollup@1m.
	Name string `json:"name"`
	// Statements run in order, each on its own (ClickHouse takes one
	// statement per query).
	Statements []string `json:"statements"`
}

// Placeholders in the migration files; see package schemas.
const (
	placeholderDatabase  = "{{database}}"
	placeholderWindow    = "{{window}}"
	placeholderDimension = "{{dimension}}"
	placeholderCounter   = "{{counter}}"
	placeholderTime      = "{{time}}"
	placeholderAddColumn = "{{add_column}}"
	windowSuffix         = ".window.sql"
)

// Column types of the measures and the window start. Current servers get
// codecs: T64 packs the small integers of counters tightly and DoubleDelta
// the sorted, evenly spaced window starts, before LZ4. 18.16 has no CODEC
// clause. Rows and query results are the same either way.
const (
	counterCodec = "UInt64 CODEC(T64, LZ4)"
	counterPlain = "UInt64"
	timeCodec    = "DateTime('UTC') CODEC(DoubleDelta, LZ4)"
	timePlain    = "DateTime('UTC')"
)

// How a migration adds a column. Current servers make ADD COLUMN idempotent
// with IF NOT EXISTS; 18.16 does not parse it, so it gets a plain ADD COLUMN
// and Migrate treats "column already exists" as success (isDuplicateColumn).
const (
	addColumnIfNotExists = "ADD COLUMN IF NOT EXISTS"
	addColumnPlain       = "ADD COLUMN"
)

// Dimension column types. LowCardinality(String) dictionary-encodes the six
// dimensions, which repeat heavily; before 19.x it was experimental (18.16
// needs allow_experimental_low_cardinality_type=1, and its format changed), so
// servers older than lowCardinalityMin get plain String. Both render the same
// values to queries and inserts.
const (
	dimensionLowCardinality = "LowCardinality(String)"
	dimensionString         = "String"
)

// lowCardinalityMin is the first release that gets LowCardinality.
// LowCardinality left experimental in 19.x; 20.1 is the conservative line.
var lowCardinalityMin = [2]int{20, 1}

// DimensionType returns the column type of the dimension columns for a server
// reporting version (the result of SELECT version(), e.g. "18.16.1" or
// "24.8.4.13").
func DimensionType(version string) (string, error) {
	major, minor, err := parseVersion(version)
	if err != nil {
		return "", err
	}
	if major > lowCardinalityMin[0] || major == lowCardinalityMin[0] && minor >= lowCardinalityMin[1] {
		return dimensionLowCardinality, nil
	}
	return dimensionString, nil
}

func parseVersion(version string) (major, minor int, err error) {
	parts := strings.SplitN(strings.TrimSpace(version), ".", 3)
	if len(parts) < 2 {
		return 0, 0, fmt.Errorf("parse ClickHouse version %q: want major.minor[.patch...]", version)
	}
	if major, err = strconv.Atoi(parts[0]); err != nil || major < 0 {
		return 0, 0, fmt.Errorf("parse ClickHouse version %q: bad major", version)
	}
	if minor, err = strconv.Atoi(parts[1]); err != nil || minor < 0 {
		return 0, 0, fmt.Errorf("parse ClickHouse version %q: bad minor", version)
	}
	return major, minor, nil
}

// RenderMigrations renders the embedded migrations for a server of the given
// version, a database and the configured windows, in the order they must run.
// It touches no server, so the DDL for any version can be inspected or
// executed elsewhere (scripts/chdb_check.py runs it on a current ClickHouse).
func RenderMigrations(version, database string, windows []aggregate.Window) ([]Migration, error) {
	return renderMigrations(schemas.ClickHouse, version, database, windows)
}

func renderMigrations(fsys fs.FS, version, database string, windows []aggregate.Window) ([]Migration, error) {
	if !chconn.IsIdentifier(database) {
		return nil, fmt.Errorf("render migrations: database %q is not a plain identifier", database)
	}
	for _, w := range windows {
		if !aggregate.IsWindowName(w.Name) {
			return nil, fmt.Errorf("render migrations: window name %q is not canonical", w.Name)
		}
	}
	dim, err := DimensionType(version)
	if err != nil {
		return nil, err
	}
	// Codecs arrived in the same generation of servers as production-ready
	// LowCardinality, so one version line decides both (and IF NOT EXISTS in
	// ADD COLUMN, which arrived before 20.1 too).
	counter, tm, addColumn := counterPlain, timePlain, addColumnPlain
	if dim == dimensionLowCardinality {
		counter, tm, addColumn = counterCodec, timeCodec, addColumnIfNotExists
	}
	files, err := fs.Glob(fsys, "clickhouse/*.sql")
	if err != nil {
		return nil, fmt.Errorf("render migrations: %w", err)
	}
	slices.Sort(files) // NNNN_ prefixes sort in version order
	var out []Migration
	seen := make(map[uint32]string, len(files))
	for _, file := range files {
		base := path.Base(file)
		version, err := fileVersion(base)
		if err != nil {
			return nil, err
		}
		if prev, dup := seen[version]; dup {
			return nil, fmt.Errorf("render migrations: %s and %s share version %04d", prev, base, version)
		}
		seen[version] = base
		raw, err := fs.ReadFile(fsys, file)
		if err != nil {
			return nil, fmt.Errorf("render migrations: %w", err)
		}
		text := strings.ReplaceAll(string(raw), placeholderDatabase, "`"+database+"`")
		text = strings.ReplaceAll(text, placeholderDimension, dim)
		text = strings.ReplaceAll(text, placeholderCounter, counter)
		text = strings.ReplaceAll(text, placeholderTime, tm)
		text = strings.ReplaceAll(text, placeholderAddColumn, addColumn)
		if name, ok := strings.CutSuffix(base, windowSuffix); ok {
			for _, w := range windows {
				m, err := renderFile(base, version, name+"@"+w.Name, strings.ReplaceAll(text, placeholderWindow, w.Name))
				if err != nil {
					return nil, err
				}
				out = append(out, m)
			}
			continue
		}
		m, err := renderFile(base, version, strings.TrimSuffix(base, ".sql"), text)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func renderFile(file string, version uint32, name, text string) (Migration, error) {
	if i := strings.Index(text, "{{"); i >= 0 {
		end := min(len(text), i+20)
		return Migration{}, fmt.Errorf("render migrations: %s: unknown or misplaced placeholder near %q", file, text[i:end])
	}
	stmts, err := splitStatements(text)
	if err != nil {
		return Migration{}, fmt.Errorf("render migrations: %s: %w", file, err)
	}
	if len(stmts) == 0 {
		return Migration{}, fmt.Errorf("render migrations: %s has no statements", file)
	}
	return Migration{Version: version, Name: name, Statements: stmts}, nil
}

func fileVersion(base string) (uint32, error) {
	num, _, ok := strings.Cut(base, "_")
	if !ok || len(num) != 4 {
		return 0, fmt.Errorf("render migrations: %s: want NNNN_name.sql", base)
	}
	v, err := strconv.ParseUint(num, 10, 32)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("render migrations: %s: want NNNN_name.sql with NNNN >= 0001", base)
	}
	return uint32(v), nil
}

// splitStatements splits SQL text on semicolons outside quotes and drops
// -- line comments, returning trimmed, non-empty statements.
func splitStatements(text string) ([]string, error) {
	var (
		out   []string
		cur   strings.Builder
		quote byte // the open quote character, 0 outside quotes
	)
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case quote != 0:
			cur.WriteByte(c)
			if c == '\\' && i+1 < len(text) {
				i++
				cur.WriteByte(text[i])
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
			cur.WriteByte(c)
		case c == '-' && i+1 < len(text) && text[i+1] == '-':
			for i < len(text) && text[i] != '\n' {
				i++
			}
			cur.WriteByte('\n')
		case c == ';':
			flush()
		default:
			cur.WriteByte(c)
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	flush()
	return out, nil
}
