package chconn

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/usage-rollup/usage-rollup/internal/security"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/secrettest"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	tests := []struct {
		name   string
		modify func(*Config)
		want   string // "" for valid, else what the message must say
	}{
		{"no addr", func(c *Config) { c.Addr = nil }, "Addr must list"},
		{"empty addr", func(c *Config) { c.Addr = []string{"a:9000", ""} }, "Addr entry 1 is empty"},
		{"database with dash", func(c *Config) { c.Database = "usage-rollup" }, "Database must be a plain identifier"},
		{"database with backquote", func(c *Config) { c.Database = "a`b" }, "Database must be a plain identifier"},
		{"empty database", func(c *Config) { c.Database = "" }, "Database must be a plain identifier"},
		{"no user", func(c *Config) { c.Username = "" }, "Username must not be empty"},
		{"dial timeout", func(c *Config) { c.DialTimeout = 0 }, "DialTimeout must be > 0"},
		{"statement timeout", func(c *Config) { c.StatementTimeout = -1 }, "StatementTimeout must be > 0"},
		{"TLS with system roots", func(c *Config) { c.TLS.Enabled = true }, ""},
		{"TLS with CA and client cert", func(c *Config) {
			c.TLS = security.TLS{Enabled: true, CAFile: "ca.pem", CertFile: "c.pem", KeyFile: "c.key"}
		}, ""},
		{"CA without TLS", func(c *Config) { c.TLS.CAFile = "ca.pem" }, "TLS.Enabled must be true"},
		{"cert without key", func(c *Config) { c.TLS = security.TLS{Enabled: true, CertFile: "c.pem"} },
			"TLS.CertFile and TLS.KeyFile must be set together"},
	}
	for _, tt := range tests {
		cfg := DefaultConfig()
		cfg.Password = secrettest.Password
		tt.modify(&cfg)
		err := cfg.Validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: Validate() = %v, want %q", tt.name, err, tt.want)
		}
		if err != nil && secrettest.Leaks(err.Error()) {
			t.Errorf("%s: Validate() error reveals the password: %v", tt.name, err)
		}
	}
}

// TestConfigNeverPrintsPassword formats, encodes and logs a Config every way
// a caller plausibly would: the password is a security.Secret, so the Config
// needs no formatting code of its own.
func TestConfigNeverPrintsPassword(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Username, cfg.Password = "secure_user", secrettest.Password
	cfg.TLS = security.TLS{Enabled: true, CAFile: "/etc/ca.pem"}
	type wrapper struct{ ClickHouse Config }
	secrettest.CheckFormatted(t, map[string]any{"Config": cfg, "*Config": &cfg, "wrapper": wrapper{cfg}, "*wrapper": &wrapper{cfg}})
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := zerolog.New(&logs)
	log.Info().Interface("clickhouse", cfg).Msg("settings")
	for name, out := range map[string]string{"json": string(js), "zerolog": logs.String(), "%+v": fmt.Sprintf("%+v", cfg)} {
		if secrettest.Leaks(out) {
			t.Errorf("%s output reveals the password: %s", name, out)
		}
		if !strings.Contains(out, "[redacted]") || !strings.Contains(out, "secure_user") || !strings.Contains(out, "/etc/ca.pem") {
			t.Errorf("%s output lacks the redacted password or the other settings: %s", name, out)
		}
	}
}
