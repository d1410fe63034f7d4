package consumer

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// SASL mechanisms Security accepts (KAFKA_SASL_MECHANISM).
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// redacted is what a Secret prints as, whatever the verb or encoder.
const redacted = "[redacted]"

// Secret is a credential. It prints, logs and encodes as "[redacted]" (fmt
// with any verb, %#v included, encoding/json, zerolog), so a config struct
// holding one can be logged whole. Only an explicit string(s) reveals it.
//
// fmt cannot reach the methods of unexported struct fields: a Secret inside
// an unexported field of a struct printed with %v is printed raw. Keep
// Secrets in exported fields, or do not print the outer struct.
type Secret string

// String returns "[redacted]".
func (Secret) String() string { return redacted }

// GoString returns "[redacted]" for %#v.
func (Secret) GoString() string { return redacted }

// Format writes "[redacted]" for every verb, so %x or %q cannot reveal it.
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// MarshalText returns "[redacted]"; encoding/json and zerolog's Interface use it.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

var (
	_ fmt.Stringer   = Secret("")
	_ fmt.GoStringer = Secret("")
	_ fmt.Formatter  = Secret("")
)

// Security is how the consumer authenticates to and encrypts its connections
// to Kafka. The zero value is a PLAINTEXT connection. The variable named in
// each comment is the one Validate mentions.
type Security struct {
	// TLS encrypts every broker connection (KAFKA_TLS_ENABLED): the SSL or,
	// with a SASL mechanism, the SASL_SSL listener.
	TLS bool
	// CAFile is a PEM bundle of the CAs that sign the brokers' certificates
	// (KAFKA_TLS_CA_FILE). Empty means the system roots.
	CAFile string
	// CertFile and KeyFile are the PEM client certificate and key presented
	// for mTLS (KAFKA_TLS_CERT_FILE, KAFKA_TLS_KEY_FILE): both or neither.
	CertFile string
	KeyFile  string
	// SASLMechanism is "", PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	// (KAFKA_SASL_MECHANISM). PLAIN sends the password as is: use it with TLS
	// outside a trusted network.
	SASLMechanism string
	// SASLUsername and SASLPassword are the SASL credentials
	// (KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD).
	SASLUsername string
	SASLPassword Secret
}

// Validate reports the first invalid field, naming its environment variable.
// It reads no files and never includes the password.
func (s Security) Validate() error {
	switch {
	case !s.TLS && (s.CAFile != "" || s.CertFile != "" || s.KeyFile != ""):
		return errors.New("KAFKA_TLS_CA_FILE, KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE need KAFKA_TLS_ENABLED=true")
	case (s.CertFile == "") != (s.KeyFile == ""):
		return errors.New("KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE must be set together (client certificate) or both left empty")
	case s.SASLMechanism == "" && (s.SASLUsername != "" || s.SASLPassword != ""):
		return errors.New("KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD need KAFKA_SASL_MECHANISM (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")
	case s.SASLMechanism == "":
		return nil
	case s.mechanism() == "":
		return fmt.Errorf("KAFKA_SASL_MECHANISM must be PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or empty, got %q", s.SASLMechanism)
	case s.SASLUsername == "":
		return fmt.Errorf("KAFKA_SASL_USERNAME must be set with KAFKA_SASL_MECHANISM=%s", s.mechanism())
	case s.SASLPassword == "":
		return fmt.Errorf("KAFKA_SASL_PASSWORD must be set with KAFKA_SASL_MECHANISM=%s", s.mechanism())
	}
	return nil
}

// mechanism returns the canonical name of SASLMechanism (matched without
// regard to case), or "" if it names none.
func (s Security) mechanism() string {
	for _, m := range []string{SASLPlain, SASLScramSHA256, SASLScramSHA512} {
		if strings.EqualFold(s.SASLMechanism, m) {
			return m
		}
	}
	return ""
}

// Protocol is the Kafka security protocol these settings speak, i.e. the kind
// of broker listener they need: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
func (s Security) Protocol() string {
	switch {
	case s.TLS && s.SASLMechanism != "":
		return "SASL_SSL"
	case s.TLS:
		return "SSL"
	case s.SASLMechanism != "":
		return "SASL_PLAINTEXT"
	}
	return "PLAINTEXT"
}

// String describes the settings without the password.
func (s Security) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s", s.Protocol())
	if s.TLS {
		fmt.Fprintf(&b, " ca=%q cert=%q key=%q", s.CAFile, s.CertFile, s.KeyFile)
	}
	if s.SASLMechanism != "" {
		fmt.Fprintf(&b, " mechanism=%s user=%q password=%s", s.SASLMechanism, s.SASLUsername, passwordState(s.SASLPassword))
	}
	return b.String()
}

// GoString is String, so that %#v does not print the password either.
func (s Security) GoString() string { return "consumer.Security{" + s.String() + "}" }

// Format prints String for every verb: %v, %+v and %#v included.
func (s Security) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = f.Write([]byte(s.GoString()))
		return
	}
	_, _ = f.Write([]byte(s.String()))
}

// MarshalZerologObject logs the settings without the password (only whether
// one is set): log.Info().Object("kafka_security", sec).
func (s Security) MarshalZerologObject(e *zerolog.Event) {
	e.Str("protocol", s.Protocol()).Bool("tls", s.TLS)
	if s.TLS {
		e.Str("ca_file", s.CAFile).Str("cert_file", s.CertFile).Str("key_file", s.KeyFile)
	}
	if s.SASLMechanism != "" {
		e.Str("sasl_mechanism", s.SASLMechanism).Str("sasl_username", s.SASLUsername).Bool("sasl_password_set", s.SASLPassword != "")
	}
}

var _ zerolog.LogObjectMarshaler = Security{}

func passwordState(p Secret) string {
	if p == "" {
		return "(empty)"
	}
	return redacted
}

// Dialer validates the settings and returns a dialer with TLS and SASL set,
// for kafka.ConsumerGroupConfig.Dialer and kafka.ReaderConfig.Dialer. timeout
// bounds a connection's TCP connect, TLS handshake and SASL exchange.
// Errors name the variable and file path, never file contents or the password.
func (s Security) Dialer(timeout time.Duration) (*kafka.Dialer, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	d := &kafka.Dialer{Timeout: timeout, DualStack: true}
	var err error
	if d.TLS, err = s.tlsConfig(); err != nil {
		return nil, err
	}
	if d.SASLMechanism, err = s.saslMechanism(); err != nil {
		return nil, err
	}
	return d, nil
}

// Transport returns a transport with the dialer's TLS and SASL settings, for
// kafka.Client.Transport (and kafka.Writer.Transport). A Transport does not
// use a Dialer's TLS or SASL fields: it needs its own. Set ClientID on the
// result as needed.
func (s Security) Transport(d *kafka.Dialer) *kafka.Transport {
	return &kafka.Transport{
		Dial:        d.DialFunc, // nil: the transport's own net.Dialer
		DialTimeout: d.Timeout,
		ClientID:    d.ClientID,
		TLS:         d.TLS,
		SASL:        d.SASLMechanism,
	}
}

// tlsConfig builds the client TLS configuration, or nil without TLS.
func (s Security) tlsConfig() (*tls.Config, error) {
	if !s.TLS {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("KAFKA_TLS_CA_FILE: %w", err) // *PathError: op, path, errno
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("KAFKA_TLS_CA_FILE: no PEM certificate in %s", s.CAFile)
		}
	}
	if s.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			// crypto/tls's messages name PEM block types, never key bytes.
			return nil, fmt.Errorf("KAFKA_TLS_CERT_FILE/KAFKA_TLS_KEY_FILE: load client key pair %s, %s: %w", s.CertFile, s.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// saslMechanism builds the kafka-go mechanism, or nil without SASL.
func (s Security) saslMechanism() (sasl.Mechanism, error) {
	var algo scram.Algorithm
	switch s.mechanism() {
	case "":
		return nil, nil
	case SASLPlain:
		return redactedMechanism{plain.Mechanism{Username: s.SASLUsername, Password: string(s.SASLPassword)}}, nil
	case SASLScramSHA256:
		algo = scram.SHA256
	case SASLScramSHA512:
		algo = scram.SHA512
	}
	m, err := scram.Mechanism(algo, s.SASLUsername, string(s.SASLPassword))
	if err != nil {
		// The underlying SASLprep error may quote the offending input.
		return nil, fmt.Errorf("KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD: not valid for %s (SASLprep rejects a character)", algo.Name())
	}
	return redactedMechanism{m}, nil
}

// redactedMechanism hides the credentials inside a mechanism (plain.Mechanism
// is a struct with an exported Password) from anyone printing a Dialer or
// Transport: it prints as its name only.
type redactedMechanism struct{ sasl.Mechanism }

// Format prints the mechanism's name for every verb.
func (m redactedMechanism) Format(f fmt.State, _ rune) {
	_, _ = f.Write([]byte("sasl(" + m.Name() + ")"))
}

func (m redactedMechanism) String() string { return "sasl(" + m.Name() + ")" }

var _ sasl.Mechanism = redactedMechanism{}
