package sink

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/rs/zerolog"
)

// This file secures the connection: the client TLS configuration built from
// Config, and the redaction that keeps Config.Password out of logs and
// formatted output.

// tlsConfig returns the client TLS configuration for the native protocol, or
// nil when TLS is off. The server name is the host of each CLICKHOUSE_ADDR
// entry (crypto/tls infers it per address), so certificates must name the
// host or IP clients dial. Errors name the variable and the file path, never
// file contents.
func (c Config) tlsConfig() (*tls.Config, error) {
	if !c.TLS {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.TLSCAFile != "" {
		pem, err := os.ReadFile(c.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("CLICKHOUSE_TLS_CA_FILE: %w", err) // *PathError: op, path, errno
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CLICKHOUSE_TLS_CA_FILE: no PEM certificate in %s", c.TLSCAFile)
		}
	}
	if c.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			// crypto/tls's messages name PEM block types, never key bytes.
			return nil, fmt.Errorf("CLICKHOUSE_TLS_CERT_FILE/CLICKHOUSE_TLS_KEY_FILE: load client key pair %s, %s: %w", c.TLSCertFile, c.TLSKeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// redacted stands in for a set password.
const redacted = "[redacted]"

// String describes the configuration with the password redacted.
func (c Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "addr=%v database=%s username=%s password=%s", c.Addr, c.Database, c.Username, passwordState(c.Password))
	fmt.Fprintf(&b, " tls=%t", c.TLS)
	if c.TLS {
		fmt.Fprintf(&b, " tls_ca_file=%q tls_cert_file=%q tls_key_file=%q", c.TLSCAFile, c.TLSCertFile, c.TLSKeyFile)
	}
	names := make([]string, len(c.Windows))
	for i, w := range c.Windows {
		names[i] = w.Name
	}
	fmt.Fprintf(&b, " dial_timeout=%s insert_timeout=%s migrate=%t windows=%v", c.DialTimeout, c.InsertTimeout, c.Migrate, names)
	return b.String()
}

// GoString is String, so that %#v does not print the password either.
func (c Config) GoString() string { return "sink.Config{" + c.String() + "}" }

// Format prints String for every verb (%v, %+v, %s, %q, ...) and GoString
// for %#v, so formatting a Config never reveals the password. A Config in an
// unexported field of another struct is beyond fmt's reach: fmt prints such
// fields raw.
func (c Config) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = f.Write([]byte(c.GoString()))
		return
	}
	_, _ = f.Write([]byte(c.String()))
}

// MarshalZerologObject logs the connection settings without the password
// (only whether one is set): log.Info().Object("clickhouse", cfg).
func (c Config) MarshalZerologObject(e *zerolog.Event) {
	e.Strs("addr", c.Addr).Str("database", c.Database).Str("username", c.Username).
		Bool("password_set", c.Password != "").Bool("tls", c.TLS)
	if c.TLS {
		e.Str("tls_ca_file", c.TLSCAFile).Str("tls_cert_file", c.TLSCertFile).Str("tls_key_file", c.TLSKeyFile)
	}
	e.Dur("dial_timeout", c.DialTimeout).Dur("insert_timeout", c.InsertTimeout).Bool("migrate", c.Migrate)
}

// MarshalJSON encodes the settings MarshalZerologObject logs, without the
// password, so that json.Marshal and zerolog's Interface cannot reveal it.
func (c Config) MarshalJSON() ([]byte, error) {
	names := make([]string, len(c.Windows))
	for i, w := range c.Windows {
		names[i] = w.Name
	}
	return json.Marshal(struct {
		Addr          []string `json:"addr"`
		Database      string   `json:"database"`
		Username      string   `json:"username"`
		PasswordSet   bool     `json:"password_set"`
		TLS           bool     `json:"tls"`
		TLSCAFile     string   `json:"tls_ca_file,omitempty"`
		TLSCertFile   string   `json:"tls_cert_file,omitempty"`
		TLSKeyFile    string   `json:"tls_key_file,omitempty"`
		DialTimeout   string   `json:"dial_timeout"`
		InsertTimeout string   `json:"insert_timeout"`
		Migrate       bool     `json:"migrate"`
		Windows       []string `json:"windows"`
	}{c.Addr, c.Database, c.Username, c.Password != "", c.TLS, c.TLSCAFile, c.TLSCertFile, c.TLSKeyFile,
		c.DialTimeout.String(), c.InsertTimeout.String(), c.Migrate, names})
}

var (
	_ json.Marshaler             = Config{}
	_ fmt.Formatter              = Config{}
	_ zerolog.LogObjectMarshaler = Config{}
)

func passwordState(p string) string {
	if p == "" {
		return "(empty)"
	}
	return redacted
}
