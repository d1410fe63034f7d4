package schema

import (
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		windows []aggregate.Window
		want    string // "" for valid
	}{
		{"1m and 1h", []aggregate.Window{w1m, w1h}, ""},
		{"no windows", nil, "Windows must list at least one window size"},
		{"odd window name", []aggregate.Window{{Name: "1m`"}}, "Windows name \"1m`\" is not canonical"},
		{"window twice", []aggregate.Window{w1h, w1h}, "Windows lists 1h twice"},
	}
	for _, tt := range tests {
		err := Config{Windows: tt.windows}.Validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: Validate() = %v, want %q", tt.name, err, tt.want)
		}
		if tt.want == "" {
			continue
		}
		// New refuses what Validate refuses, before asking the connection anything.
		if _, err := New(nil, Config{Windows: tt.windows}, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: New() = %v, want %q", tt.name, err, tt.want)
		}
	}
}
