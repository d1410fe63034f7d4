// Package loadgen generates a seeded, reproducible stream of synthetic usage
// events in the gateway's wire format, including the awkward parts (duplicates,
// late events, both field spellings, chat-style usage, malformed messages), and
// computes the totals a correct consumer must end up with.
//
// Generate is pure: given the same Config it emits the same bytes and returns
// the same Expected. Produce writes the stream to Kafka, paced to Config.Rate.
package loadgen

import (
	"errors"
	"fmt"
	"time"
)

// Config describes one generated stream. Every ratio is a probability in [0, 1].
type Config struct {
	// Seed makes the stream reproducible; it also prefixes every event id, so
	// streams with different seeds never share ids.
	Seed int64
	// Count is the number of messages to emit, duplicates and malformed included.
	Count int
	// Rate paces Produce in messages per second; 0 writes as fast as possible.
	// Generate itself never sleeps.
	Rate float64
	// Start is the event time of the first event. Later events advance from it.
	Start time.Time
	// EventInterval is the mean event-time gap between consecutive events
	// (each gap is uniform in [0.5, 1.5) of it). Zero means 1/Rate when Rate > 0,
	// so event time tracks wall time, else DefaultEventInterval.
	EventInterval time.Duration

	// DuplicateRatio is the share of messages that re-send an already-sent valid
	// event byte for byte (same id), at most DuplicateMaxDistance messages later.
	DuplicateRatio float64
	// LateRatio is the share of valid events whose timestamp lies 1-3 hours
	// behind the stream's event clock.
	LateRatio float64
	// MalformedRatio is the share of new (non-duplicate) messages that a correct
	// consumer must reject; see MalformedKinds.
	MalformedRatio float64
	// CamelRatio is the share of events spelled in camelCase (workspaceId, ...).
	CamelRatio float64
	// ChatRatio is the share of chat.completions and embeddings events whose
	// usage is chat-style (prompt_tokens/completion_tokens) instead of
	// input_tokens/output_tokens. Image events always use the latter.
	ChatRatio float64
}

// DefaultEventInterval is the mean event-time gap of unpaced streams: 100
// events per second of event time, so a 100k-event run spans ~17 minutes and
// crosses several one-minute windows.
const DefaultEventInterval = 10 * time.Millisecond

// DuplicateMaxDistance bounds how many messages after the original a duplicate
// is sent. Duplicates share the original's key and therefore its partition, so
// they arrive within this many messages of it on that partition.
const DuplicateMaxDistance = 49

// MaxFutureSkew is how far ahead of its send time an event timestamp may be.
// Consumers reject far-future events; staying within an hour keeps every
// generated event acceptable.
const MaxFutureSkew = time.Hour

// DefaultConfig returns a realistic mix: a few percent of duplicates, late and
// malformed events, and both spellings.
func DefaultConfig() Config {
	return Config{
		Seed:           1,
		Count:          10_000,
		DuplicateRatio: 0.02,
		LateRatio:      0.03,
		MalformedRatio: 0.01,
		CamelRatio:     0.25,
		ChatRatio:      0.5,
	}
}

// Validate names the first invalid field.
func (c Config) Validate() error {
	if c.Count < 0 {
		return fmt.Errorf("invalid config: Count must be >= 0, got %d", c.Count)
	}
	if c.Rate < 0 {
		return fmt.Errorf("invalid config: Rate must be >= 0, got %g", c.Rate)
	}
	if c.Start.IsZero() {
		return errors.New("invalid config: Start must be set")
	}
	if c.EventInterval < 0 {
		return fmt.Errorf("invalid config: EventInterval must be >= 0, got %s", c.EventInterval)
	}
	ratios := []struct {
		name string
		v    float64
	}{
		{"DuplicateRatio", c.DuplicateRatio},
		{"LateRatio", c.LateRatio},
		{"MalformedRatio", c.MalformedRatio},
		{"CamelRatio", c.CamelRatio},
		{"ChatRatio", c.ChatRatio},
	}
	for _, r := range ratios {
		if !(r.v >= 0 && r.v <= 1) { // also rejects NaN
			return fmt.Errorf("invalid config: %s must be in [0, 1], got %g", r.name, r.v)
		}
	}
	return nil
}

// Interval returns the effective mean event-time gap.
func (c Config) Interval() time.Duration {
	switch {
	case c.EventInterval > 0:
		return c.EventInterval
	case c.Rate > 0:
		return time.Duration(float64(time.Second) / c.Rate)
	default:
		return DefaultEventInterval
	}
}

// Span is the expected event-time distance between the first and last event.
// An unpaced run that should end about now starts at now - Span.
func (c Config) Span() time.Duration {
	return time.Duration(c.Count) * c.Interval()
}
