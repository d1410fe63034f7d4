package sink

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/usage-rollup/usage-rollup/internal/testpki"
)

// testPassword is distinctive so that a leak is unmistakable in any output.
const testPassword = "hunter2-Zq8vX3-not-for-output"

func TestConfigValidateTLS(t *testing.T) {
	tests := []struct {
		name    string
		modify  func(*Config)
		wantErr string // "" for valid, else the env var the message must name
	}{
		{"TLS with system roots", func(c *Config) { c.TLS = true }, ""},
		{"TLS with CA and client cert", func(c *Config) {
			c.TLS, c.TLSCAFile, c.TLSCertFile, c.TLSKeyFile = true, "ca.pem", "c.pem", "c.key"
		}, ""},
		{"CA without TLS", func(c *Config) { c.TLSCAFile = "ca.pem" }, "CLICKHOUSE_TLS_ENABLED"},
		{"cert without TLS", func(c *Config) { c.TLSCertFile, c.TLSKeyFile = "c.pem", "c.key" }, "CLICKHOUSE_TLS_ENABLED"},
		{"cert without key", func(c *Config) { c.TLS, c.TLSCertFile = true, "c.pem" }, "CLICKHOUSE_TLS_KEY_FILE"},
		{"key without cert", func(c *Config) { c.TLS, c.TLSKeyFile = true, "c.key" }, "CLICKHOUSE_TLS_CERT_FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Password = testPassword
			tt.modify(&cfg)
			err := cfg.Validate()
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if (tt.wantErr == "") != (err == nil) || !strings.Contains(gotErr, tt.wantErr) {
				t.Fatalf("Validate() = %v, want error naming %q", err, tt.wantErr)
			}
			if strings.Contains(gotErr, testPassword) {
				t.Fatalf("Validate() error reveals the password: %v", err)
			}
		})
	}
}

// TestConfigNeverPrintsPassword formats, encodes and logs a Config every way
// a caller plausibly would.
func TestConfigNeverPrintsPassword(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Username, cfg.Password, cfg.TLS, cfg.TLSCAFile = "secure_user", testPassword, true, "/etc/ca.pem"
	type wrapper struct{ Sink Config }
	for name, v := range map[string]any{"Config": cfg, "*Config": &cfg, "wrapper": wrapper{cfg}, "*wrapper": &wrapper{cfg}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
			if out := fmt.Sprintf(verb, v); strings.Contains(out, testPassword) || strings.Contains(out, fmt.Sprintf("%x", testPassword)) {
				t.Errorf("Sprintf(%s, %s) reveals the password: %s", verb, name, out)
			}
		}
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := zerolog.New(&logs)
	log.Info().Object("clickhouse", cfg).Interface("any", cfg).Stringer("str", cfg).Msg("settings")
	for name, out := range map[string]string{"json": string(js), "zerolog": logs.String()} {
		if strings.Contains(out, testPassword) {
			t.Errorf("%s output reveals the password: %s", name, out)
		}
		if !strings.Contains(out, `"password_set":true`) || !strings.Contains(out, `"username":"secure_user"`) || !strings.Contains(out, `"tls":true`) {
			t.Errorf("%s output lacks the non-secret fields: %s", name, out)
		}
	}
	if got := cfg.String(); !strings.Contains(got, "password="+redacted) || !strings.Contains(got, "tls=true") {
		t.Errorf("String() = %q, want the password redacted and tls=true", got)
	}
}

func TestTLSConfig(t *testing.T) {
	if tc, err := DefaultConfig().tlsConfig(); tc != nil || err != nil {
		t.Fatalf("TLS off: tlsConfig() = %v, %v; want nil, nil", tc, err)
	}
	pki := testpki.Write(t)
	cfg := DefaultConfig()
	cfg.TLS, cfg.TLSCAFile, cfg.TLSCertFile, cfg.TLSKeyFile = true, pki.CA, pki.Cert, pki.Key
	tc, err := cfg.tlsConfig()
	if err != nil {
		t.Fatalf("tlsConfig: %v", err)
	}
	if tc.MinVersion != tls.VersionTLS12 || tc.RootCAs == nil || len(tc.Certificates) != 1 || tc.InsecureSkipVerify {
		t.Fatalf("TLS config: min version %x, roots %v, %d client certs, insecure %t",
			tc.MinVersion, tc.RootCAs != nil, len(tc.Certificates), tc.InsecureSkipVerify)
	}
}

// TestOpenFileErrors checks that Open fails on unusable TLS files before
// dialing, naming the variable and path but no file contents.
func TestOpenFileErrors(t *testing.T) {
	pki := testpki.Write(t)
	dir := t.TempDir()
	badKey := filepath.Join(dir, "bad.key")
	testpki.WriteFile(t, badKey, "-----BEGIN PRIVATE KEY-----\n"+testPassword+"\n-----END PRIVATE KEY-----\n")
	notPEM := filepath.Join(dir, "ca.txt")
	testpki.WriteFile(t, notPEM, testPassword+"\n")
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name          string
		ca, cert, key string
		want1, want2  string
		migrate       bool
	}{
		{"missing CA", missing, "", "", "CLICKHOUSE_TLS_CA_FILE", missing, true},
		{"CA not PEM", notPEM, "", "", "CLICKHOUSE_TLS_CA_FILE", notPEM, false},
		{"missing cert", "", missing, pki.Key, "CLICKHOUSE_TLS_CERT_FILE", missing, true},
		{"bad key", pki.CA, pki.Cert, badKey, "CLICKHOUSE_TLS_KEY_FILE", badKey, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			// A port nothing listens on: the test must fail before dialing.
			cfg.Addr, cfg.Password, cfg.Migrate = []string{"127.0.0.1:1"}, testPassword, tt.migrate
			cfg.TLS, cfg.TLSCAFile, cfg.TLSCertFile, cfg.TLSKeyFile = true, tt.ca, tt.cert, tt.key
			_, err := Open(context.Background(), cfg, zerolog.Nop())
			if err == nil {
				t.Fatal("Open succeeded, want error")
			}
			for _, w := range []string{tt.want1, tt.want2} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), testPassword) {
				t.Errorf("error reveals file contents or password: %v", err)
			}
		})
	}
}
