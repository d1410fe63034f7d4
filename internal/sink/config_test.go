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
		want   string // the env var the message must name
	}{
		{"no addr", func(c *Config) { c.Addr = nil }, "CLICKHOUSE_ADDR"},
		{"empty addr", func(c *Config) { c.Addr = []string{""} }, "CLICKHOUSE_ADDR"},
		{"database with dash", func(c *Config) { c.Database = "usage-rollup" }, "CLICKHOUSE_DATABASE"},
		{"empty database", func(c *Config) { c.Database = "" }, "CLICKHOUSE_DATABASE"},
		{"no user", func(c *Config) { c.Username = "" }, "CLICKHOUSE_USERNAME"},
		{"dial timeout", func(c *Config) { c.DialTimeout = 0 }, "CLICKHOUSE_DIAL_TIMEOUT"},
		{"insert timeout", func(c *Config) { c.InsertTimeout = -1 }, "CLICKHOUSE_INSERT_TIMEOUT"},
		{"no windows", func(c *Config) { c.Windows = nil }, "ROLLUP_WINDOWS"},
		{"odd window name", func(c *Config) { c.Windows = []aggregate.Window{{Name: "1 m"}} }, "ROLLUP_WINDOWS"},
		{"window twice", func(c *Config) { c.Windows = []aggregate.Window{w1m, w1m} }, "ROLLUP_WINDOWS"},
	}
	for _, tt := range tests {
		cfg := DefaultConfig()
		tt.modify(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate() = %v, want an error naming %s", tt.name, err, tt.want)
		}
	}
}
