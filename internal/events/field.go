package events

import (
	"bytes"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// MaxCount is the largest token count or latency_ms the decoder accepts.
// Real per-call counts are below 1e8, so 1e12 leaves ample headroom while
// keeping every accepted value exactly representable as a float64 (< 2^53)
// for JSON and JavaScript consumers, and while making UInt64 sums in ClickHouse
// safe: a sum needs more than 1.8e7 events at the maximum to overflow, so one
// corrupt producer cannot wrap a total.
const MaxCount = 1_000_000_000_000

// MaxFieldBytes bounds id and every dimension string, in bytes after JSON
// unescaping. Dimensions become ClickHouse LowCardinality keys and aggregator
// map keys; a bound keeps per-group memory predictable, and real values are
// well under 100 bytes, so a longer one is a producer bug, not data.
const MaxFieldBytes = 256

// maxStatusCode is the largest status_code: HTTP status codes have three digits.
const maxStatusCode = 999

// field names one canonical field of the contract. Every spelling of a field
// (snake_case, camelCase, chat-style) maps to the same field, so conflicts
// between spellings and duplicate keys are found in one place: the slot.
type field uint8

const (
	fieldID field = iota
	fieldTimestamp
	fieldWorkspaceID
	fieldProjectID
	fieldAPIKeyID
	fieldProvider
	fieldModel
	fieldEndpoint
	fieldStatusCode
	fieldLatencyMs
	fieldInputTokens
	fieldTextTokens
	fieldImageTokens
	fieldCachedTokens
	fieldOutputTokens
	fieldTotalTokens
	numFields
)

// fieldPath is the snake_case JSON path reported in RejectError.Field.
var fieldPath = [numFields]string{
	fieldID:           "id",
	fieldTimestamp:    "timestamp",
	fieldWorkspaceID:  "workspace_id",
	fieldProjectID:    "project_id",
	fieldAPIKeyID:     "api_key_id",
	fieldProvider:     "provider",
	fieldModel:        "model",
	fieldEndpoint:     "endpoint",
	fieldStatusCode:   "status_code",
	fieldLatencyMs:    "latency_ms",
	fieldInputTokens:  "usage.input_tokens",
	fieldTextTokens:   "usage.input_tokens_details.text_tokens",
	fieldImageTokens:  "usage.input_tokens_details.image_tokens",
	fieldCachedTokens: "usage.input_tokens_details.cached_tokens",
	fieldOutputTokens: "usage.output_tokens",
	fieldTotalTokens:  "usage.total_tokens",
}

// requiredFields are checked, in this order, after the walk.
var requiredFields = [...]field{fieldID, fieldTimestamp, fieldWorkspaceID, fieldModel, fieldEndpoint}

// slot holds what the message said about one field, across all its spellings
// and duplicate keys.
type slot struct {
	str  []byte // string fields; aliases the parser's buffer
	n    uint64 // counts and status_code; Unix nanoseconds for timestamp
	set  bool   // a non-null value was given
	null bool   // null was given: named in the missing_field detail
}

// reject records the first rejection of a Decode call; later ones are ignored
// so the reported reason follows document order.
func (d *Decoder) reject(r Reason, f field, detail string) {
	if d.err == nil {
		d.err = &RejectError{Reason: r, Field: fieldPath[f], Detail: detail}
	}
}

// setString handles one occurrence of a string field.
func (d *Decoder) setString(f field, key []byte, v *fastjson.Value) {
	t := v.Type()
	if t == fastjson.TypeNull {
		d.slots[f].null = true
		return
	}
	if t != fastjson.TypeString {
		d.reject(ReasonWrongType, f, fmt.Sprintf("%s: want string, got %s", key, t))
		return
	}
	s, _ := v.StringBytes() // cannot fail: the type is string
	if !utf8.Valid(s) {
		d.reject(ReasonWrongType, f, fmt.Sprintf("%s: string is not valid UTF-8", key))
		return
	}
	if len(s) > MaxFieldBytes {
		d.reject(ReasonFieldTooLong, f, fmt.Sprintf("%s: %d bytes, max %d", key, len(s), MaxFieldBytes))
		return
	}
	sl := &d.slots[f]
	if sl.set && !bytes.Equal(sl.str, s) {
		d.reject(ReasonConflictingField, f, fmt.Sprintf("%s: %q differs from earlier value %q", key, s, sl.str))
		return
	}
	sl.str, sl.set = s, true
}

// setCount handles one occurrence of a token count or latency_ms.
func (d *Decoder) setCount(f field, key []byte, v *fastjson.Value) {
	n, ok := d.number(f, key, v)
	if !ok {
		return
	}
	if n > MaxCount {
		d.reject(ReasonCountTooLarge, f, fmt.Sprintf("%s: %d exceeds %d", key, n, uint64(MaxCount)))
		return
	}
	d.setNumber(f, key, n)
}

// setStatus handles one occurrence of status_code. Negative and fractional
// values get the count reasons; a value above 999 is wrong_type because it is
// not an HTTP status code at all (count_too_large would suggest a size limit).
func (d *Decoder) setStatus(key []byte, v *fastjson.Value) {
	n, ok := d.number(fieldStatusCode, key, v)
	if !ok {
		return
	}
	if n > maxStatusCode {
		d.reject(ReasonWrongType, fieldStatusCode, fmt.Sprintf("%s: %d is not an HTTP status code (0..%d)", key, n, maxStatusCode))
		return
	}
	d.setNumber(fieldStatusCode, key, n)
}

// emptyTimestamp marks a timestamp given as "": it is no instant, so it
// conflicts with every real value, and it becomes empty_field after the walk.
const emptyTimestamp = ^uint64(0)

// setTimestamp handles one occurrence of timestamp: an RFC 3339 string or an
// integer of Unix epoch milliseconds. Two occurrences agree if they denote the
// same instant to the nanosecond, whatever their spelling.
func (d *Decoder) setTimestamp(key []byte, v *fastjson.Value) {
	const f = fieldTimestamp
	var (
		ns     int64
		detail string
	)
	switch t := v.Type(); t {
	case fastjson.TypeNull:
		d.slots[f].null = true
		return
	case fastjson.TypeString:
		s, _ := v.StringBytes() // cannot fail: the type is string
		if len(s) == 0 {
			d.setInstant(key, emptyTimestamp)
			return
		}
		ns, detail = parseRFC3339(s)
	case fastjson.TypeNumber:
		ns, detail = parseEpochMs(d.rawNumber(v))
	default:
		d.reject(ReasonWrongType, f, fmt.Sprintf("%s: want RFC 3339 string or integer epoch milliseconds, got %s", key, t))
		return
	}
	if detail != "" {
		d.reject(ReasonInvalidTimestamp, f, detail)
		return
	}
	d.setInstant(key, uint64(ns))
}

// setInstant is setNumber for timestamp, with a readable conflict detail.
func (d *Decoder) setInstant(key []byte, ns uint64) {
	sl := &d.slots[fieldTimestamp]
	if sl.set && sl.n != ns {
		d.reject(ReasonConflictingField, fieldTimestamp,
			fmt.Sprintf("%s: %s differs from earlier value %s", key, instantString(ns), instantString(sl.n)))
		return
	}
	sl.n, sl.set = ns, true
}

// instantString formats a timestamp slot value for error details.
func instantString(ns uint64) string {
	if ns == emptyTimestamp {
		return `""`
	}
	return time.Unix(0, int64(ns)).UTC().Format(time.RFC3339Nano)
}

// number reads a JSON number that must be a non-negative integer. The checks
// work on the number's raw text, already validated against the JSON grammar,
// so that 40.0 and 1e3 are told apart from 40 and 1000 and nothing is rounded.
func (d *Decoder) number(f field, key []byte, v *fastjson.Value) (uint64, bool) {
	t := v.Type()
	if t == fastjson.TypeNull {
		d.slots[f].null = true
		return 0, false
	}
	if t != fastjson.TypeNumber {
		d.reject(ReasonWrongType, f, fmt.Sprintf("%s: want integer, got %s", key, t))
		return 0, false
	}
	num := d.rawNumber(v)
	// A leading minus is negative_count even for -0 and -1.5: the sign is the
	// first thing wrong, and no correct producer writes -0.
	if num[0] == '-' {
		d.reject(ReasonNegativeCount, f, fmt.Sprintf("%s: %s", key, num))
		return 0, false
	}
	for _, c := range num {
		if c == '.' || c == 'e' || c == 'E' {
			d.reject(ReasonNonInteger, f, fmt.Sprintf("%s: %s has a fraction or exponent", key, num))
			return 0, false
		}
	}
	// MaxCount has 13 digits; longer integers exceed it (JSON forbids leading
	// zeros) and would overflow digits.
	if len(num) > 13 {
		d.reject(ReasonCountTooLarge, f, fmt.Sprintf("%s: %.20s... exceeds %d", key, num, uint64(MaxCount)))
		return 0, false
	}
	n, _ := digits(num)
	return uint64(n), true
}

// setNumber stores a checked number, or rejects it if an earlier occurrence of
// the field gave a different value.
func (d *Decoder) setNumber(f field, key []byte, n uint64) {
	sl := &d.slots[f]
	if sl.set && sl.n != n {
		d.reject(ReasonConflictingField, f, fmt.Sprintf("%s: %d differs from earlier value %d", key, n, sl.n))
		return
	}
	sl.n, sl.set = n, true
}

// rawNumber returns the raw text of a JSON number value. fastjson has no
// accessor for it; MarshalTo appends exactly that text, into a buffer the
// Decoder reuses so this does not allocate once warm.
func (d *Decoder) rawNumber(v *fastjson.Value) []byte {
	d.num = v.MarshalTo(d.num[:0])
	return d.num
}
