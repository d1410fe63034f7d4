// Package security holds what the Kafka and the ClickHouse connections share
// to authenticate and encrypt: the Secret type that keeps credentials out of
// every printed, encoded or logged form, and the client TLS configuration
// loaded from PEM files. Protocol specifics (SASL for Kafka, the native
// protocol's auth for ClickHouse) stay with their clients.
package security

import (
	"encoding"
	"fmt"
)

// redacted is what a Secret prints as, whatever the verb or encoder.
const redacted = "[redacted]"

// Secret is a credential. It prints, logs and encodes as "[redacted]": fmt
// with any verb (%#v included), encoding/json, and zerolog (Interface, Any
// and Stringer). A config struct holding one can therefore be logged whole,
// and needs no formatting code of its own. Only Reveal returns the value.
//
// fmt cannot call the methods of unexported struct fields: a Secret inside an
// unexported field of a struct printed with %v is printed raw. Keep Secrets
// in exported fields, or do not print the outer struct.
type Secret string

// Reveal returns the credential, for the client that sends it. It is a
// method rather than a conversion so that every use is easy to find.
func (s Secret) Reveal() string { return string(s) }

// String returns "[redacted]".
func (Secret) String() string { return redacted }

// GoString returns "[redacted]" for %#v.
func (Secret) GoString() string { return redacted }

// Format writes "[redacted]" for every verb, so %x, %q or %d cannot reveal it.
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// MarshalText returns "[redacted]"; encoding/json and zerolog's Interface use it.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

var (
	_ fmt.Stringer           = Secret("")
	_ fmt.GoStringer         = Secret("")
	_ fmt.Formatter          = Secret("")
	_ encoding.TextMarshaler = Secret("")
)
