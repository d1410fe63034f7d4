package ingest

import (
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/usage-rollup/usage-rollup/internal/security"

	"github.com/usage-rollup/usage-rollup/internal/fielderr"
)

// SASL mechanisms Security accepts (KAFKA_SASL_MECHANISM).
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// Security is how the consumer authenticates to and encrypts its connections
// to Kafka. The zero value is a PLAINTEXT connection. The variable named in
// each comment is the one Validate mentions.
type Security struct {
	// TLS encrypts every broker connection (KAFKA_TLS_ENABLED,
	// KAFKA_TLS_CA_FILE, KAFKA_TLS_CERT_FILE, KAFKA_TLS_KEY_FILE): the SSL
	// or, with a SASL mechanism, the SASL_SSL listener.
	TLS security.TLS
	// SASLMechanism is "", PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	// (KAFKA_SASL_MECHANISM). PLAIN sends the password as is: use it with TLS
	// outside a trusted network.
	SASLMechanism string
	// SASLUsername and SASLPassword are the SASL credentials
	// (KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD).
	SASLUsername string
	SASLPassword security.Secret
}

// Validate reports the first invalid field as a *fielderr.Error. It reads no
// files and never includes the password.
func (s Security) Validate() error {
	if err := s.TLS.Validate(); err != nil {
		return fielderr.Nest("TLS", err)
	}
	switch {
	case s.SASLMechanism == "" && (s.SASLUsername != "" || s.SASLPassword != ""):
		return fielderr.New("SASLMechanism", "must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 when {SASLUsername} or {SASLPassword} is set")
	case s.SASLMechanism == "":
		return nil
	case s.mechanism() == "":
		return fielderr.New("SASLMechanism", "must be PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or empty, got %q", s.SASLMechanism)
	case s.SASLUsername == "":
		return fielderr.New("SASLUsername", "must be set with {SASLMechanism}=%s", s.mechanism())
	case s.SASLPassword == "":
		return fielderr.New("SASLPassword", "must be set with {SASLMechanism}=%s", s.mechanism())
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
	case s.TLS.Enabled && s.SASLMechanism != "":
		return "SASL_SSL"
	case s.TLS.Enabled:
		return "SSL"
	case s.SASLMechanism != "":
		return "SASL_PLAINTEXT"
	}
	return "PLAINTEXT"
}

// String describes the settings: the protocol, the TLS files, the SASL
// mechanism and user. The password is a security.Secret, so printing a
// Security any other way does not reveal it either.
func (s Security) String() string {
	var b strings.Builder
	b.WriteString(s.Protocol())
	if s.TLS.Enabled {
		fmt.Fprintf(&b, " ca=%q cert=%q key=%q", s.TLS.CAFile, s.TLS.CertFile, s.TLS.KeyFile)
	}
	if s.SASLMechanism != "" {
		fmt.Fprintf(&b, " mechanism=%s user=%q password=%s", s.SASLMechanism, s.SASLUsername, s.SASLPassword)
	}
	return b.String()
}

// MarshalZerologObject logs the settings without the password (only whether
// one is set): log.Info().Object("kafka_security", sec).
func (s Security) MarshalZerologObject(e *zerolog.Event) {
	e.Str("protocol", s.Protocol()).Bool("tls", s.TLS.Enabled)
	if s.TLS.Enabled {
		e.Str("ca_file", s.TLS.CAFile).Str("cert_file", s.TLS.CertFile).Str("key_file", s.TLS.KeyFile)
	}
	if s.SASLMechanism != "" {
		e.Str("sasl_mechanism", s.SASLMechanism).Str("sasl_username", s.SASLUsername).Bool("sasl_password_set", s.SASLPassword != "")
	}
}

var _ zerolog.LogObjectMarshaler = Security{}

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
	if d.TLS, err = s.TLS.Config(); err != nil {
		return nil, fielderr.Nest("TLS", err)
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

// saslMechanism builds the kafka-go mechanism, or nil without SASL.
func (s Security) saslMechanism() (sasl.Mechanism, error) {
	var algo scram.Algorithm
	switch s.mechanism() {
	case "":
		return nil, nil
	case SASLPlain:
		return redactedMechanism{plain.Mechanism{Username: s.SASLUsername, Password: s.SASLPassword.Reveal()}}, nil
	case SASLScramSHA256:
		algo = scram.SHA256
	case SASLScramSHA512:
		algo = scram.SHA512
	}
	m, err := scram.Mechanism(algo, s.SASLUsername, s.SASLPassword.Reveal())
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
