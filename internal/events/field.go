package events

import (
	"bytes"
	"fmt"
	"time"
	"unicode/utf8"
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
	fieldEndpoint // the last string field: see numStringFields
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

// numStringFields counts the string fields, fieldID through fieldEndpoint.
const numStringFields = int(fieldEndpoint) + 1

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
	n        uint64 // counts and status_code; Unix nanoseconds for timestamp
	off, len uint32 // string fields: the value is Decoder.buf[off : off+len]
	set      bool   // a non-null value was given
	null     bool   // null was given: named in the missing_field detail
}

// str returns the value of string field f, nil if none was given.
func (d *Decoder) str(f field) []byte {
	sl := &d.slots[f]
	if !sl.set {
		return nil
	}
	return d.buf[sl.off : sl.off+sl.len : sl.off+sl.len]
}

// reject records the first rejection of a Decode call; later ones are ignored
// so the reported reason follows document order.
func (d *Decoder) reject(r Reason, f field, detail string) {
	if d.err == nil {
		d.err = &RejectError{Reason: r, Field: fieldPath[f], Detail: detail}
	}
}

// keyOf returns the key of spelling sp, for rejection details. The key in
// the message is exactly that text once unescaped, or sp would not match it.
func keyOf(sp spelling) []byte { return spellingKey[sp] }

// stringField reads the value at i of a string field spelled sp.
func (d *Decoder) stringField(b []byte, i int, sp spelling, depth int) int {
	f := members[sp].f
	switch b[i] {
	case '"':
		end, flags := d.scanString(b, i+1)
		if end >= 0 {
			d.setString(sp, b, i+1, end-1, flags)
		}
		return end
	case 'n':
		d.slots[f].null = true
		return d.scanLiteral(b, i, "null")
	}
	end := d.skipValue(b, i, depth)
	if end >= 0 {
		d.reject(ReasonWrongType, f, fmt.Sprintf("%s: want string, got %s", keyOf(sp), typeName(b[i])))
	}
	return end
}

// setString handles one occurrence of a string field whose text between the
// quotes is b[start:end], given the flags scanString returned for it.
func (d *Decoder) setString(sp spelling, b []byte, start, end int, flags uint8) {
	f := members[sp].f
	s := d.buf[start:end]
	if flags&strEscaped != 0 {
		// In place: the unescaped value is never longer than its text, and
		// the text is read from b, not from the copy being overwritten.
		s = appendUnescaped(s[:0], b[start:end])
	}
	sl := &d.slots[f]
	switch {
	case flags&strNonASCII != 0 && !utf8.Valid(s):
		d.reject(ReasonWrongType, f, fmt.Sprintf("%s: string is not valid UTF-8", keyOf(sp)))
	case len(s) > MaxFieldBytes:
		d.reject(ReasonFieldTooLong, f, fmt.Sprintf("%s: %d bytes, max %d", keyOf(sp), len(s), MaxFieldBytes))
	case sl.set:
		if old := d.str(f); !bytes.Equal(old, s) {
			d.reject(ReasonConflictingField, f, fmt.Sprintf("%s: %q differs from earlier value %q", keyOf(sp), s, old))
		}
	default:
		sl.off, sl.len, sl.set = uint32(start), uint32(len(s)), true
	}
}

// countField reads the value at i of a token count, latency_ms or (kind
// kindStatus) status_code. The checks work on the number's raw text, already
// checked against the JSON grammar, so that 40.0 and 1e3 are told apart from
// 40 and 1000 and nothing is rounded.
func (d *Decoder) countField(b []byte, i int, sp spelling, depth int) int {
	f, key := members[sp].f, keyOf(sp)
	switch c := b[i]; {
	case c == '-' || (c >= '0' && c <= '9'):
	case c == 'n':
		d.slots[f].null = true
		return d.scanLiteral(b, i, "null")
	default:
		end := d.skipValue(b, i, depth)
		if end >= 0 {
			d.reject(ReasonWrongType, f, fmt.Sprintf("%s: want integer, got %s", key, typeName(c)))
		}
		return end
	}
	end, frac := d.scanNumber(b, i)
	if end < 0 {
		return end
	}
	num := b[i:end]
	switch {
	// A leading minus is negative_count even for -0 and -1.5: the sign is the
	// first thing wrong, and no correct producer writes -0.
	case num[0] == '-':
		d.reject(ReasonNegativeCount, f, fmt.Sprintf("%s: %s", key, num))
	case frac:
		d.reject(ReasonNonInteger, f, fmt.Sprintf("%s: %s has a fraction or exponent", key, num))
	// MaxCount has 13 digits; longer integers exceed it (JSON forbids leading
	// zeros) and would overflow digits.
	case len(num) > 13:
		d.reject(ReasonCountTooLarge, f, fmt.Sprintf("%s: %.20s... exceeds %d", key, num, uint64(MaxCount)))
	default:
		n, _ := digits(num)
		d.setCount(sp, uint64(n))
	}
	return end
}

// setCount checks the value of a count or status_code against its bound and
// stores it. A status_code above 999 is wrong_type because it is not an HTTP
// status code at all (count_too_large would suggest a size limit).
func (d *Decoder) setCount(sp spelling, n uint64) {
	m := members[sp]
	switch {
	case m.kind == kindStatus && n > maxStatusCode:
		d.reject(ReasonWrongType, m.f, fmt.Sprintf("%s: %d is not an HTTP status code (0..%d)", keyOf(sp), n, maxStatusCode))
	case n > MaxCount:
		d.reject(ReasonCountTooLarge, m.f, fmt.Sprintf("%s: %d exceeds %d", keyOf(sp), n, uint64(MaxCount)))
	default:
		d.setNumber(sp, n)
	}
}

// emptyTimestamp marks a timestamp given as "": it is no instant, so it
// conflicts with every real value, and it becomes empty_field after the walk.
const emptyTimestamp = ^uint64(0)

// timestampField reads the value at i of timestamp: an RFC 3339 string or an
// integer of Unix epoch milliseconds. Two occurrences agree if they denote the
// same instant to the nanosecond, whatever their spelling.
func (d *Decoder) timestampField(b []byte, i int, sp spelling, depth int) int {
	key := keyOf(sp)
	const f = fieldTimestamp
	var (
		ns     int64
		detail string
		end    int
	)
	switch c := b[i]; {
	case c == '"':
		var flags uint8
		if end, flags = d.scanString(b, i+1); end < 0 {
			return end
		}
		s := b[i+1 : end-1]
		if flags&strEscaped != 0 {
			d.tmp = appendUnescaped(d.tmp[:0], s)
			s = d.tmp
		}
		if len(s) == 0 {
			d.setInstant(key, emptyTimestamp)
			return end
		}
		ns, detail = parseRFC3339(s)
	case c == '-' || (c >= '0' && c <= '9'):
		if end, _ = d.scanNumber(b, i); end < 0 {
			return end
		}
		ns, detail = parseEpochMs(b[i:end])
	case c == 'n':
		d.slots[f].null = true
		return d.scanLiteral(b, i, "null")
	default:
		if end = d.skipValue(b, i, depth); end >= 0 {
			d.reject(ReasonWrongType, f, fmt.Sprintf("%s: want RFC 3339 string or integer epoch milliseconds, got %s", key, typeName(c)))
		}
		return end
	}
	if detail != "" {
		d.reject(ReasonInvalidTimestamp, f, detail)
		return end
	}
	d.setInstant(key, uint64(ns))
	return end
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

// setNumber stores a checked number, or rejects it if an earlier occurrence of
// the field gave a different value.
func (d *Decoder) setNumber(sp spelling, n uint64) {
	f := members[sp].f
	sl := &d.slots[f]
	if sl.set && sl.n != n {
		d.reject(ReasonConflictingField, f, fmt.Sprintf("%s: %d differs from earlier value %d", keyOf(sp), n, sl.n))
		return
	}
	sl.n, sl.set = n, true
}
