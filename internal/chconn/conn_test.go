package chconn

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/security"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/secrettest"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/servicetest"
)

// TestRefusedConnectionIsTransient needs no server: nothing listens on port
// 1, and a server that is not up yet is what the consumer retries at start.
func TestRefusedConnectionIsTransient(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Addr, cfg.DialTimeout = []string{"127.0.0.1:1"}, time.Second
	for name, open := range map[string]func(context.Context, Config) (*Conn, error){"Open": Open, "OpenServer": OpenServer} {
		c, err := open(t.Context(), cfg)
		if err == nil {
			_ = c.Close()
			t.Fatalf("%s on a closed port succeeded", name)
		}
		if want := "ping ClickHouse [127.0.0.1:1]: "; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: error = %q, want prefix %q", name, err, want)
		}
		if !IsTransient(err) {
			t.Errorf("%s: IsTransient(%v) = false, want true for a refused connection", name, err)
		}
	}
}

// TestOpenFileErrors checks that Open fails on an unusable TLS file before
// dialing, naming the field (nested under TLS) and the path. Every kind of
// unusable file is security.TestTLSConfigFileErrors' business.
func TestOpenFileErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.pem")
	cfg := DefaultConfig()
	// A port nothing listens on: a dial would fail with another error.
	cfg.Addr, cfg.Password = []string{"127.0.0.1:1"}, secrettest.Password
	cfg.TLS = security.TLS{Enabled: true, CAFile: missing}
	_, err := Open(context.Background(), cfg)
	if err == nil {
		t.Fatal("Open succeeded, want error")
	}
	if msg := err.Error(); !strings.Contains(msg, "TLS.CAFile") || !strings.Contains(msg, missing) ||
		strings.Contains(msg, "ping") || secrettest.Leaks(msg) {
		t.Errorf("error %q: want TLS.CAFile and the path, no dial, no password", msg)
	}
	if IsTransient(err) {
		t.Errorf("IsTransient(%v) = true; a bad file does not fix itself", err)
	}
}

func TestOpen(t *testing.T) {
	addr, db := servicetest.TempDatabase(t)
	cfg := DefaultConfig()
	cfg.Addr, cfg.Database = []string{addr}, db

	// The database does not exist yet: the handshake refuses it, and
	// OpenServer is how it gets created.
	if c, err := Open(t.Context(), cfg); err == nil {
		_ = c.Close()
		t.Fatalf("Open on missing database %s succeeded", db)
	}
	server, err := OpenServer(t.Context(), cfg)
	if err != nil {
		t.Fatalf("OpenServer: %v", err)
	}
	defer server.Close()
	if server.Database() != "" || server.Version() == "" {
		t.Errorf("OpenServer: Database() = %q, Version() = %q; want none and the server's", server.Database(), server.Version())
	}
	if err := server.Exec(t.Context(), "CREATE DATABASE `"+db+"`"); err != nil {
		t.Fatal(err)
	}

	c, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if c.Database() != db || c.Version() != server.Version() {
		t.Errorf("Database() = %q, Version() = %q; want %q, %q", c.Database(), c.Version(), db, server.Version())
	}
	if err := c.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	// Unqualified names resolve in the connection's database.
	var current string
	if err := c.QueryRow(t.Context(), "SELECT currentDatabase()").Scan(&current); err != nil || current != db {
		t.Errorf("currentDatabase() = %q, %v; want %q", current, err, db)
	}
	ctx, cancel := c.StatementContext(t.Context())
	defer cancel()
	if deadline, ok := ctx.Deadline(); !ok || time.Until(deadline) > cfg.StatementTimeout {
		t.Errorf("StatementContext deadline %v (set %t), want within %s", deadline, ok, cfg.StatementTimeout)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := c.Ping(t.Context()); err == nil {
		t.Error("Ping after Close succeeded, want an error")
	}
}
