package security

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/usage-rollup/usage-rollup/internal/fielderr"
)

// TLS is the client side of a TLS connection, with its trust roots and
// optional client certificate in PEM files. The zero value is no TLS.
//
// Its errors are *fielderr.Error naming the field to fix (the command maps it
// to its variable, e.g. KAFKA_TLS_CA_FILE) and the file path, never file
// contents.
type TLS struct {
	// Enabled speaks TLS.
	Enabled bool
	// CAFile is a PEM bundle of the CAs that sign the server certificate.
	// Empty means the system roots.
	CAFile string
	// CertFile and KeyFile are the PEM client certificate and key presented
	// for mutual TLS: both or neither.
	CertFile string
	KeyFile  string
}

// Validate reports the first inconsistent field without reading any file.
func (t TLS) Validate() error {
	switch {
	case !t.Enabled && (t.CAFile != "" || t.CertFile != "" || t.KeyFile != ""):
		return fielderr.New("Enabled", "must be true when {CAFile}, {CertFile} or {KeyFile} is set")
	case (t.CertFile == "") != (t.KeyFile == ""):
		return fielderr.New("CertFile", "and {KeyFile} must be set together (client certificate) or both left empty")
	}
	return nil
}

// Config loads the files and returns the client TLS configuration, or nil
// when TLS is off. The server name is left to the caller's dialer, which
// takes it from the address it dials, so certificates must name the host or
// IP clients connect to.
func (t TLS) Config() (*tls.Config, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if !t.Enabled {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fielderr.Wrap("CAFile", err) // *PathError: op, path, errno
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fielderr.Wrap("CAFile", fmt.Errorf("%w in %s", errNoCertificate, t.CAFile))
		}
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			// crypto/tls's messages name PEM block types, never key bytes.
			return nil, fielderr.Wrap("CertFile", fmt.Errorf("load client key pair %s, %s: %w", t.CertFile, t.KeyFile, err))
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// errNoCertificate is a CA file without a single PEM certificate.
var errNoCertificate = errors.New("no PEM certificate")
