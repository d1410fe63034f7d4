package sink

import (
	"strings"
	"testing"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	tests := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"no windows", func(c *Config) { c.Windows = nil }, "Windows must list at least one window size"},
		{"odd window name", func(c *Config) { c.Windows = []aggregate.Window{{Name: "1 m"}} }, `Windows name "1 m" is not canonical`},
		{"window twice", func(c *Config) { c.Windows = []aggregate.Window{w1m, w1m} }, "Windows lists 1m twice"},
	}
	for _, tt := range tests {
		cfg := DefaultConfig()
		tt.modify(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate() = %v, want %q", tt.name, err, tt.want)
		}
		if _, err := New(nil, cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: New() = %v, want %q", tt.name, err, tt.want)
		}
	}
}
