package ingest

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/usage-rollup/usage-rollup/internal/fielderr"
	"github.com/usage-rollup/usage-rollup/internal/security"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/secrettest"
	"github.com/usage-rollup/usage-rollup/internal/testsupport/testpki"
)

func TestSecurityValidate(t *testing.T) {
	sasl := func(m string) Security {
		return Security{SASLMechanism: m, SASLUsername: "usage", SASLPassword: secrettest.Password}
	}
	tests := []struct {
		name    string
		sec     Security
		wantErr string // "" for valid
	}{
		{"zero value is PLAINTEXT", Security{}, ""},
		{"TLS with system roots", Security{TLS: security.TLS{Enabled: true}}, ""},
		{"TLS with CA and client cert", Security{TLS: security.TLS{Enabled: true, CAFile: "ca.pem", CertFile: "c.pem", KeyFile: "c.key"}}, ""},
		{"PLAIN", sasl("PLAIN"), ""},
		{"SCRAM-SHA-256", sasl("SCRAM-SHA-256"), ""},
		{"SCRAM-SHA-512 over TLS", func() Security { s := sasl("SCRAM-SHA-512"); s.TLS.Enabled = true; return s }(), ""},
		{"mechanism case-insensitive", sasl("scram-sha-512"), ""},
		{"CA file without TLS", Security{TLS: security.TLS{CAFile: "ca.pem"}}, "TLS.Enabled must be true"},
		{"cert without key", Security{TLS: security.TLS{Enabled: true, CertFile: "c.pem"}}, "TLS.CertFile and TLS.KeyFile must be set together"},
		{"key without cert", Security{TLS: security.TLS{Enabled: true, KeyFile: "c.key"}}, "TLS.CertFile and TLS.KeyFile must be set together"},
		{"unknown mechanism", sasl("GSSAPI"), "SASLMechanism must be PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or empty"},
		{"mechanism without user", Security{SASLMechanism: "PLAIN", SASLPassword: secrettest.Password}, "SASLUsername must be set"},
		{"mechanism without password", Security{SASLMechanism: "PLAIN", SASLUsername: "usage"}, "SASLPassword must be set"},
		{"credentials without mechanism", Security{SASLUsername: "usage", SASLPassword: secrettest.Password}, "SASLMechanism must be PLAIN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.sec.Validate()
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if (tt.wantErr == "") != (err == nil) || !strings.Contains(gotErr, tt.wantErr) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
			if secrettest.Leaks(gotErr) {
				t.Fatalf("Validate() error contains the password: %v", err)
			}
		})
	}
}

func TestSecurityProtocol(t *testing.T) {
	tests := []struct {
		sec  Security
		want string
	}{
		{Security{}, "PLAINTEXT"},
		{Security{TLS: security.TLS{Enabled: true}}, "SSL"},
		{Security{SASLMechanism: "PLAIN"}, "SASL_PLAINTEXT"},
		{Security{TLS: security.TLS{Enabled: true}, SASLMechanism: "SCRAM-SHA-256"}, "SASL_SSL"},
	}
	for _, tt := range tests {
		if got := tt.sec.Protocol(); got != tt.want {
			t.Errorf("%+v.Protocol() = %s, want %s", tt.sec, got, tt.want)
		}
	}
}

// TestSecretsNeverPrinted formats, encodes and logs the settings, and a
// Dialer and Transport built from them, every way a caller plausibly would.
func TestSecretsNeverPrinted(t *testing.T) {
	for _, mech := range []string{SASLPlain, SASLScramSHA256, SASLScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			sec := Security{SASLMechanism: mech, SASLUsername: "usage", SASLPassword: secrettest.Password}
			d, err := sec.Dialer(time.Second)
			if err != nil {
				t.Fatal(err)
			}
			tr := sec.Transport(d)
			type wrapper struct{ Security Security }
			secrettest.CheckFormatted(t, map[string]any{
				"Secret": sec.SASLPassword, "Security": sec, "*Security": &sec, "wrapper": wrapper{sec},
				"Dialer": *d, "*Dialer": d, "*Transport": tr, "mechanism": d.SASLMechanism,
			})
			js, err := json.Marshal(sec)
			if err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			log := zerolog.New(&logs)
			log.Info().Object("security", sec).Interface("any", sec).Stringer("str", sec).Msg("settings")
			log.Info().Interface("secret", sec.SASLPassword).Msg("secret")
			for name, out := range map[string]string{"json": string(js), "zerolog": logs.String()} {
				if secrettest.Leaks(out) {
					t.Errorf("%s output reveals the password: %s", name, out)
				}
			}
			if !strings.Contains(logs.String(), `"sasl_password_set":true`) || !strings.Contains(logs.String(), `"sasl_username":"usage"`) {
				t.Errorf("zerolog object lacks the non-secret fields: %s", logs.String())
			}
			if got := fmt.Sprint(sec); !strings.Contains(got, "SASL_PLAINTEXT") || !strings.Contains(got, mech) || !strings.Contains(got, "[redacted]") {
				t.Errorf("String() = %q, want protocol, mechanism and [redacted]", got)
			}
		})
	}
}

func TestDialerAndTransport(t *testing.T) {
	pki := testpki.Write(t)
	sec := Security{
		TLS:           security.TLS{Enabled: true, CAFile: pki.CA, CertFile: pki.Cert, KeyFile: pki.Key},
		SASLMechanism: SASLScramSHA512, SASLUsername: "usage", SASLPassword: secrettest.Password,
	}
	d, err := sec.Dialer(7 * time.Second)
	if err != nil {
		t.Fatalf("Dialer: %v", err)
	}
	if d.Timeout != 7*time.Second || d.TLS == nil || d.SASLMechanism == nil {
		t.Fatalf("Dialer = %+v, want timeout 7s, TLS and SASL", d)
	}
	if d.TLS.MinVersion != tls.VersionTLS12 || d.TLS.RootCAs == nil || len(d.TLS.Certificates) != 1 || d.TLS.InsecureSkipVerify {
		t.Fatalf("TLS config: min version %x, roots %v, %d client certs, insecure %t",
			d.TLS.MinVersion, d.TLS.RootCAs != nil, len(d.TLS.Certificates), d.TLS.InsecureSkipVerify)
	}
	if d.SASLMechanism.Name() != SASLScramSHA512 {
		t.Fatalf("mechanism %s, want %s", d.SASLMechanism.Name(), SASLScramSHA512)
	}
	tr := sec.Transport(d)
	if tr.TLS != d.TLS || tr.SASL != d.SASLMechanism || tr.DialTimeout != d.Timeout {
		t.Fatalf("Transport does not carry the dialer's TLS, SASL and timeout: %+v", tr)
	}

	plain, err := Security{}.Dialer(time.Second)
	if err != nil || plain.TLS != nil || plain.SASLMechanism != nil {
		t.Fatalf("zero Security: Dialer() = %+v, %v; want plain dialer", plain, err)
	}
	var _ *kafka.Transport = Security{}.Transport(plain)
}

// TestDialerFileErrors checks that an unusable TLS file is reported under
// the Security field it came from; every kind of unusable file is
// security.TestTLSConfigFileErrors' business.
func TestDialerFileErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.pem")
	_, err := Security{TLS: security.TLS{Enabled: true, CAFile: missing}}.Dialer(time.Second)
	var fe *fielderr.Error
	if !errors.As(err, &fe) || fe.Field != "TLS.CAFile" || !strings.Contains(err.Error(), missing) {
		t.Fatalf("Dialer() error = %v, want a field error on TLS.CAFile naming %s", err, missing)
	}
}
