package sink

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
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
	pki := writeTestPKI(t)
	cfg := DefaultConfig()
	cfg.TLS, cfg.TLSCAFile, cfg.TLSCertFile, cfg.TLSKeyFile = true, pki.ca, pki.cert, pki.key
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
	pki := writeTestPKI(t)
	dir := t.TempDir()
	badKey := filepath.Join(dir, "bad.key")
	mustWrite(t, badKey, "-----BEGIN PRIVATE KEY-----\n"+testPassword+"\n-----END PRIVATE KEY-----\n")
	notPEM := filepath.Join(dir, "ca.txt")
	mustWrite(t, notPEM, testPassword+"\n")
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name          string
		ca, cert, key string
		want1, want2  string
		migrate       bool
	}{
		{"missing CA", missing, "", "", "CLICKHOUSE_TLS_CA_FILE", missing, true},
		{"CA not PEM", notPEM, "", "", "CLICKHOUSE_TLS_CA_FILE", notPEM, false},
		{"missing cert", "", missing, pki.key, "CLICKHOUSE_TLS_CERT_FILE", missing, true},
		{"bad key", pki.ca, pki.cert, badKey, "CLICKHOUSE_TLS_KEY_FILE", badKey, false},
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

type testPKI struct{ ca, cert, key string }

// writeTestPKI writes a CA and a client certificate signed by it, as PEM
// files in a temporary directory.
func writeTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "usage-rollup"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caTmpl, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := testPKI{ca: filepath.Join(dir, "ca.pem"), cert: filepath.Join(dir, "client.pem"), key: filepath.Join(dir, "client.key")}
	mustWrite(t, p.ca, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})))
	mustWrite(t, p.cert, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})))
	mustWrite(t, p.key, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
	return p
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
