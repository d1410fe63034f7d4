package security

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLS is the client side of a TLS connection, with its trust roots and
// optional client certificate in PEM files. The zero value is no TLS.
//
// Its methods take vars, the prefix of the environment variables the fields
// come from (KAFKA_TLS, CLICKHOUSE_TLS): errors name the variable to fix,
// e.g. KAFKA_TLS_CA_FILE for CAFile, and the file path, never file contents.
type TLS struct {
	// Enabled speaks TLS (<vars>_ENABLED).
	Enabled bool
	// CAFile is a PEM bundle of the CAs that sign the server certificate
	// (<vars>_CA_FILE). Empty means the system roots.
	CAFile string
	// CertFile and KeyFile are the PEM client certificate and key presented
	// for mutual TLS (<vars>_CERT_FILE, <vars>_KEY_FILE): both or neither.
	CertFile string
	KeyFile  string
}

// Validate reports the first inconsistent field without reading any file.
func (t TLS) Validate(vars string) error {
	switch {
	case !t.Enabled && (t.CAFile != "" || t.CertFile != "" || t.KeyFile != ""):
		return fmt.Errorf("%[1]s_CA_FILE, %[1]s_CERT_FILE and %[1]s_KEY_FILE need %[1]s_ENABLED=true", vars)
	case (t.CertFile == "") != (t.KeyFile == ""):
		return fmt.Errorf("%[1]s_CERT_FILE and %[1]s_KEY_FILE must be set together (client certificate) or both left empty", vars)
	}
	return nil
}

// Config loads the files and returns the client TLS configuration, or nil
// when TLS is off. The server name is left to the caller's dialer, which
// takes it from the address it dials, so certificates must name the host or
// IP clients connect to.
func (t TLS) Config(vars string) (*tls.Config, error) {
	if err := t.Validate(vars); err != nil {
		return nil, err
	}
	if !t.Enabled {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s_CA_FILE: %w", vars, err) // *PathError: op, path, errno
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s_CA_FILE: %w in %s", vars, errNoCertificate, t.CAFile)
		}
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			// crypto/tls's messages name PEM block types, never key bytes.
			return nil, fmt.Errorf("%[1]s_CERT_FILE/%[1]s_KEY_FILE: load client key pair %[2]s, %[3]s: %[4]w",
				vars, t.CertFile, t.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// errNoCertificate is a CA file without a single PEM certificate.
var errNoCertificate = errors.New("no PEM certificate")
