package schema

import (
	"errors"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// ClickHouse server error codes the migrations accept as success, from
// src/Common/ErrorCodes.cpp. The numbers are stable across releases.
const (
	codeDuplicateColumn       = 15
	codeIllegalColumn         = 44
	codeUnknownTable          = 60
	codeTableAlreadyExists    = 57
	codeDatabaseAlreadyExists = 82
)

// isAlreadyExists reports the error a CREATE ... IF NOT EXISTS can still
// return when another replica creates the same object at the same moment
// (the existence check and the creation are not atomic on old servers).
func isAlreadyExists(err error) bool {
	var ex *clickhouse.Exception
	return errors.As(err, &ex) && (ex.Code == codeTableAlreadyExists || ex.Code == codeDatabaseAlreadyExists)
}

// isDuplicateColumn reports the error of an ALTER TABLE ... ADD COLUMN for a
// column that exists: "Cannot add column x: column with this name already
// exists", DUPLICATE_COLUMN (15) on current servers, ILLEGAL_COLUMN (44) on
// 18.16, which has no ADD COLUMN IF NOT EXISTS. The code 44 is shared with
// other column errors, hence the message check.
func isDuplicateColumn(err error) bool {
	var ex *clickhouse.Exception
	return errors.As(err, &ex) && (ex.Code == codeDuplicateColumn || ex.Code == codeIllegalColumn) &&
		strings.Contains(ex.Message, "column with this name already exists")
}

// isUnknownTable reports UNKNOWN_TABLE (60). Migration 0014 drops and
// re-creates the views usage_<window> (18.16 has no CREATE OR REPLACE VIEW);
// a replica migrating at the same moment can meet the gap while it creates
// a view on top of one (usage_cost_<window>), and retries the statement.
func isUnknownTable(err error) bool {
	var ex *clickhouse.Exception
	return errors.As(err, &ex) && ex.Code == codeUnknownTable
}
