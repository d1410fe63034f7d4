package schema

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
)

func TestIsDuplicateColumn(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"18.16", &clickhouse.Exception{Code: codeIllegalColumn,
			Message: "Cannot add column x: column with this name already exists"}, true},
		{"current", fmt.Errorf("migration: %w", &clickhouse.Exception{Code: codeDuplicateColumn,
			Message: "Cannot add column `x`: column with this name already exists. (DUPLICATE_COLUMN)"}), true},
		{"another column error", &clickhouse.Exception{Code: codeIllegalColumn, Message: "Illegal column x"}, false},
		{"plain", errors.New("column with this name already exists"), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		if got := isDuplicateColumn(tt.err); got != tt.want {
			t.Errorf("%s: isDuplicateColumn(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}
