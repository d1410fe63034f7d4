package security

import (
	"crypto/tls"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usage-rollup/usage-rollup/internal/testsupport/secrettest"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/testpki"
)

func TestTLSValidate(t *testing.T) {
	tests := []struct {
		name    string
		tls     TLS
		wantErr string // "" for valid, else what the message must say, naming the field
	}{
		{"zero value is no TLS", TLS{}, ""},
		{"TLS with system roots", TLS{Enabled: true}, ""},
		{"TLS with CA and client cert", TLS{Enabled: true, CAFile: "ca.pem", CertFile: "c.pem", KeyFile: "c.key"}, ""},
		{"CA without TLS", TLS{CAFile: "ca.pem"}, "Enabled must be true when CAFile, CertFile or KeyFile is set"},
		{"cert without TLS", TLS{CertFile: "c.pem", KeyFile: "c.key"}, "Enabled must be true"},
		{"cert without key", TLS{Enabled: true, CertFile: "c.pem"}, "CertFile and KeyFile must be set together"},
		{"key without cert", TLS{Enabled: true, KeyFile: "c.key"}, "CertFile and KeyFile must be set together"},
	}
	for _, tt := range tests {
		err := tt.tls.Validate()
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: Validate() = %v, want %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestTLSConfig(t *testing.T) {
	if c, err := (TLS{}).Config(); c != nil || err != nil {
		t.Fatalf("TLS off: Config() = %v, %v; want nil, nil", c, err)
	}
	pki := testpki.Write(t)
	c, err := TLS{Enabled: true, CAFile: pki.CA, CertFile: pki.Cert, KeyFile: pki.Key}.Config()
	if err != nil {
		t.Fatalf("Config: %v", err)
	}
	if c.MinVersion != tls.VersionTLS12 || c.RootCAs == nil || len(c.Certificates) != 1 || c.InsecureSkipVerify {
		t.Fatalf("TLS config: min version %x, roots %t, %d client certs, insecure %t",
			c.MinVersion, c.RootCAs != nil, len(c.Certificates), c.InsecureSkipVerify)
	}
	c, err = TLS{Enabled: true}.Config()
	if err != nil || c.RootCAs != nil || len(c.Certificates) != 0 {
		t.Fatalf("system roots: Config() = %+v, %v; want nil RootCAs and no client certificate", c, err)
	}
}

// TestTLSConfigFileErrors checks that every unusable file is refused with the
// field and the path in the error, and none of the file's contents.
func TestTLSConfigFileErrors(t *testing.T) {
	pki := testpki.Write(t)
	dir := t.TempDir()
	// A key file that is not a valid key but holds a secret-looking line.
	badKey := filepath.Join(dir, "bad.key")
	testpki.WriteFile(t, badKey, "-----BEGIN PRIVATE KEY-----\n"+secrettest.Password+"\n-----END PRIVATE KEY-----\n")
	notPEM := filepath.Join(dir, "ca.txt")
	testpki.WriteFile(t, notPEM, secrettest.Password+"\n")
	otherKey := testpki.Write(t).Key
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name   string
		tls    TLS
		want   []string // substrings of the error
		wantIs error    // what the error wraps
	}{
		{"missing CA", TLS{Enabled: true, CAFile: missing}, []string{"CAFile ", missing}, fs.ErrNotExist},
		{"CA not PEM", TLS{Enabled: true, CAFile: notPEM}, []string{"CAFile no PEM certificate in " + notPEM}, errNoCertificate},
		{"missing cert", TLS{Enabled: true, CertFile: missing, KeyFile: pki.Key}, []string{"CertFile load client key pair", missing}, fs.ErrNotExist},
		{"bad key", TLS{Enabled: true, CertFile: pki.Cert, KeyFile: badKey}, []string{"CertFile load client key pair", badKey}, nil},
		{"key of another cert", TLS{Enabled: true, CertFile: pki.Cert, KeyFile: otherKey}, []string{"CertFile load client key pair", "does not match"}, nil},
		{"inconsistent", TLS{CAFile: pki.CA}, []string{"Enabled must be true"}, nil},
	}
	for _, tt := range tests {
		_, err := tt.tls.Config()
		if err == nil {
			t.Errorf("%s: Config succeeded, want an error", tt.name)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %q", tt.name, err, w)
			}
		}
		if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
			t.Errorf("%s: error %v does not wrap %v", tt.name, err, tt.wantIs)
		}
		if secrettest.Leaks(err.Error()) {
			t.Errorf("%s: error reveals file contents: %v", tt.name, err)
		}
	}
}
