// Package events owns the usage-event wire contract: decoding one Kafka message
// value into an Event, validating it, and naming why a message is rejected.
// It imports neither Kafka nor ClickHouse so it can be fuzzed and benchmarked alone.
package events

import (
	"errors"
	"fmt"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/fielderr"
)

// Event is one decoded, validated usage event.
//
// Byte-slice fields alias the Decoder's internal buffer: they are valid only
// until the next call to Decode on the same Decoder. Callers that keep a value
// must copy it (the aggregator copies only when it creates a new group).
type Event struct {
	ID          []byte
	TimeMs      int64 // event time, Unix milliseconds UTC
	WorkspaceID []byte
	ProjectID   []byte
	APIKeyID    []byte
	Provider    []byte
	Model       []byte
	Endpoint    []byte
	// StatusCode is the HTTP status the gateway returned; 0 when absent,
	// which the contract defines as success.
	StatusCode int32
	LatencyMs  uint64
	Usage      Usage
	// Inconsistent is set when the usage object is well-formed but its parts
	// do not add up (for example text+image > input, or total != input+output).
	// The numbers are kept exactly as reported; see docs/event-contract.md.
	Inconsistent bool
}

// Usage is the token accounting of one call, as the provider reported it.
type Usage struct {
	InputTokens       uint64
	InputTextTokens   uint64
	InputImageTokens  uint64
	InputCachedTokens uint64
	OutputTokens      uint64
	TotalTokens       uint64
}

// IsError reports whether the call counts as an error (status >= 400).
func (e *Event) IsError() bool { return e.StatusCode >= 400 }

// Reason is a stable, machine-readable rejection code. Values are part of the
// contract: they are stored in usage_rejected.reason and used as metric labels.
type Reason string

// Rejection reasons. Keep in sync with docs/event-contract.md.
const (
	ReasonOversized        Reason = "oversized"
	ReasonInvalidJSON      Reason = "invalid_json"
	ReasonNotObject        Reason = "not_object"
	ReasonMissingField     Reason = "missing_field"
	ReasonWrongType        Reason = "wrong_type"
	ReasonEmptyField       Reason = "empty_field"
	ReasonFieldTooLong     Reason = "field_too_long"
	ReasonNegativeCount    Reason = "negative_count"
	ReasonNonInteger       Reason = "non_integer"
	ReasonCountTooLarge    Reason = "count_too_large"
	ReasonConflictingField Reason = "conflicting_fields"
	ReasonInvalidTimestamp Reason = "invalid_timestamp"
	ReasonFutureTimestamp  Reason = "future_timestamp"
)

// Reasons lists every Reason, for metrics pre-registration and docs tests.
var Reasons = []Reason{
	ReasonOversized, ReasonInvalidJSON, ReasonNotObject, ReasonMissingField,
	ReasonWrongType, ReasonEmptyField, ReasonFieldTooLong, ReasonNegativeCount,
	ReasonNonInteger, ReasonCountTooLarge, ReasonConflictingField,
	ReasonInvalidTimestamp, ReasonFutureTimestamp,
}

// RejectError says why a message was rejected. Decode returns it (wrapped in
// nothing) for every input it does not accept.
type RejectError struct {
	Reason Reason
	Field  string // JSON path of the offending field in snake_case, e.g. "usage.input_tokens"; empty if none
	Detail string // short human-readable explanation
}

// Error formats the rejection as "reason: field: detail", omitting an empty field.
func (e *RejectError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s: %s", e.Reason, e.Detail)
	}
	return fmt.Sprintf("%s: %s: %s", e.Reason, e.Field, e.Detail)
}

// AsReject returns the RejectError inside err, if any.
func AsReject(err error) (*RejectError, bool) {
	var re *RejectError
	ok := errors.As(err, &re)
	return re, ok
}

// Config bounds what the decoder accepts.
type Config struct {
	// MaxMessageBytes rejects larger message values as "oversized" before parsing.
	MaxMessageBytes int
	// MaxFutureSkew rejects events whose timestamp is further than this ahead of
	// the Kafka record timestamp ("future_timestamp"). The record timestamp, not
	// the wall clock, is the reference so that a replay decides exactly as the
	// first pass did.
	MaxFutureSkew time.Duration
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{MaxMessageBytes: 1 << 20, MaxFutureSkew: 24 * time.Hour}
}

// Validate reports the first invalid field as a *fielderr.Error.
func (c Config) Validate() error {
	if c.MaxMessageBytes <= 0 {
		return fielderr.New("MaxMessageBytes", "must be > 0, got %d", c.MaxMessageBytes)
	}
	if c.MaxFutureSkew <= 0 {
		return fielderr.New("MaxFutureSkew", "must be > 0, got %s", c.MaxFutureSkew)
	}
	return nil
}
