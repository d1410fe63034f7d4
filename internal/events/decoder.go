package events

import (
	"fmt"
	"time"
)

// Paths of the usage objects, for wrong_type rejections of the objects themselves.
const (
	pathUsage   = "usage"
	pathDetails = "usage.input_tokens_details"
)

// Decoder decodes and validates usage events. It reuses its buffers across
// calls so that decoding a valid event does not allocate.
//
// It reads a message in one pass: the JSON grammar (scan.go), the keys of the
// contract (keys.go) and the rules for their values (field.go) are checked
// together, and everything else is only checked for syntax. A syntax error
// anywhere outranks any field error, so after the first field error the scan
// goes on for syntax only.
//
// A Decoder is not safe for concurrent use: run one per partition goroutine.
type Decoder struct {
	cfg   Config
	slots [numFields]slot
	err   *RejectError // first field rejection of the current Decode
	// synMsg and synPos describe the first syntax error of the current Decode.
	synMsg string
	synPos int
	// buf is a copy of the message, the buffer Event's byte slices alias.
	// A string field's value is where the message has it, unescaped in
	// place if it holds escapes (unescaping never lengthens a string), so
	// slots hold offsets and no value is copied twice.
	buf []byte
	// next[s] is the spelling predicted to follow spelling s (or to come
	// first in an object, for the object starts), alt[s] the one that did
	// before it; see keys.go.
	next, alt [256]spelling
	// keyBuf and tmp hold an unescaped key and an unescaped timestamp string:
	// the rare escaped spellings, read without allocating once warm.
	keyBuf, tmp []byte
}

// initialBufBytes is the first capacity of Decoder.buf: real events are under
// 1 KiB, so none makes it grow. A larger message grows it once, to its size,
// and later ones reuse that.
const initialBufBytes = 4 << 10

// NewDecoder returns a Decoder bounded by cfg. cfg is expected to have passed
// Config.Validate (the caller validates configuration once, at the edge);
// with a zero MaxMessageBytes every message would be rejected as oversized.
func NewDecoder(cfg Config) *Decoder {
	return &Decoder{cfg: cfg, buf: make([]byte, 0, initialBufBytes)}
}

// Decode parses one Kafka message value. recordTime is the Kafka record
// timestamp, the reference for the future-skew check (if it is zero, the wall
// clock is used). On success it fills *ev and returns nil; ev's byte slices
// alias the Decoder's buffers and are valid until the next Decode. Otherwise
// it returns a *RejectError and leaves *ev zeroed.
func (d *Decoder) Decode(value []byte, recordTime time.Time, ev *Event) error {
	err := d.decode(value, recordTime, ev)
	if err != nil {
		*ev = Event{}
	}
	return err
}

// decode is Decode without clearing ev on a rejection; finish fills every
// field of ev on success.
func (d *Decoder) decode(value []byte, recordTime time.Time, ev *Event) error {
	if len(value) > d.cfg.MaxMessageBytes {
		return &RejectError{Reason: ReasonOversized,
			Detail: fmt.Sprintf("%d bytes, max %d", len(value), d.cfg.MaxMessageBytes)}
	}
	d.slots = [numFields]slot{}
	d.err, d.synMsg = nil, ""
	d.buf = append(d.buf[:0], value...)

	i := skipWS(value, 0)
	isObject := i < len(value) && value[i] == '{'
	if isObject {
		i = d.members(value, i+1, levelTop, 1)
	} else {
		i = d.skipValue(value, i, 1)
	}
	if i >= 0 {
		if j := skipWS(value, i); j < len(value) {
			d.syntax(j, synTrailing)
		}
	}
	if d.synMsg != "" {
		return &RejectError{Reason: ReasonInvalidJSON, Detail: fmt.Sprintf("%s at byte %d", d.synMsg, d.synPos)}
	}
	if !isObject {
		return &RejectError{Reason: ReasonNotObject, Detail: "top-level value is " + typeName(value[skipWS(value, 0)])}
	}
	if d.err != nil {
		return d.err
	}
	return d.finish(recordTime, ev)
}

// members reads the members of a contract object (the event, usage or input
// tokens details) whose '{' is at i-1 and which is at depth depth, and returns
// the index after its '}'. Repeated keys and repeated objects are all read in
// document order, so their values merge, and any field given twice with
// different values is a conflict. Unknown keys are checked for syntax and
// ignored so that producers can add fields without a coordinated deploy.
//
// It is the decoder's inner loop, so the usual cases (a predicted key, a
// plain string or short integer given once, a comma) are handled here and
// everything else in functions it calls.
func (d *Decoder) members(b []byte, i int, lvl level, depth int) int {
	i = skipWS(b, i)
	if i < len(b) && b[i] == '}' {
		return i + 1
	}
	prev := startTop + spelling(lvl)
	for {
		sp := d.next[prev]
		switch {
		case sp != spellNone && matchKey(b, i, sp):
			i += int(patternLen[sp])
		case d.alt[prev] != spellNone && matchKey(b, i, d.alt[prev]):
			// The other style: snake_case and camelCase events, or chat and
			// responses usage, interleave in one partition.
			sp = d.alt[prev]
			d.next[prev], d.alt[prev] = sp, d.next[prev]
			i += int(patternLen[sp])
		default:
			if i, sp = d.key(b, i, lvl); i < 0 {
				return -1
			}
			if sp != d.next[prev] {
				d.next[prev], d.alt[prev] = sp, d.next[prev]
			}
		}
		prev = sp

		if i = skipWS(b, i); i >= len(b) {
			return d.syntax(i, synEOF)
		}
		switch m := members[sp]; {
		case d.err != nil || m.kind == kindUnknown:
			// A field was rejected (only syntax is left to check), or the
			// key is not the contract's.
			i = d.skipValue(b, i, depth+1)
		case m.kind == kindString && b[i] == '"':
			end, flags := d.scanString(b, i+1)
			if end < 0 {
				return -1
			}
			if sl := &d.slots[m.f]; flags == 0 && !sl.set && end-i-2 <= MaxFieldBytes {
				sl.off, sl.len, sl.set = uint32(i+1), uint32(end-i-2), true
			} else {
				d.setString(sp, b, i+1, end-1, flags)
			}
			i = end
		case m.kind == kindCount || m.kind == kindStatus:
			end, n, ok := fastCount(b, i) // n < 10^7 <= MaxCount when ok
			switch sl := &d.slots[m.f]; {
			case !ok:
				i = d.countField(b, i, sp, depth+1)
			case !sl.set && (m.kind == kindCount || n <= maxStatusCode):
				sl.n, sl.set, i = n, true, end
			default:
				d.setCount(sp, n)
				i = end
			}
		default:
			i = d.member(b, i, sp, depth+1)
		}
		if i < 0 {
			return -1
		}

		// A comma and the next key, or the end of the object.
		if i = skipWS(b, i); i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
			continue
		}
		if i < len(b) && b[i] == '}' {
			return i + 1
		}
		if i >= len(b) {
			return d.syntax(i, synEOF)
		}
		return d.syntax(i, synObjectSep)
	}
}

// key reads the key at i of a member of a contract object at lvl, and the
// colon after it, when neither predicted key matched. It returns the index
// after the colon and the key's spelling.
func (d *Decoder) key(b []byte, i int, lvl level) (int, spelling) {
	if i >= len(b) {
		return d.syntax(i, synEOF), spellNone
	}
	if b[i] != '"' {
		return d.syntax(i, synKeyOpen), spellNone
	}
	start := i + 1
	i, flags := d.scanString(b, start)
	if i < 0 {
		return -1, spellNone
	}
	key := b[start : i-1]
	if i = skipWS(b, i); i >= len(b) || b[i] != ':' {
		return d.syntax(i, synColon), spellNone
	}
	if flags&strEscaped != 0 {
		d.keyBuf = appendUnescaped(d.keyBuf[:0], key)
		key = d.keyBuf
	}
	return i + 1, lookup(lvl, key)
}

// member reads the value at i, at depth depth, of a member whose key is
// spelled sp, in the cases members does not handle itself.
func (d *Decoder) member(b []byte, i int, sp spelling, depth int) int {
	switch members[sp].kind {
	case kindString:
		return d.stringField(b, i, sp, depth)
	case kindTimestamp:
		return d.timestampField(b, i, sp, depth)
	case kindCount, kindStatus:
		return d.countField(b, i, sp, depth)
	case kindUsage:
		return d.object(b, i, levelUsage, pathUsage, sp, depth)
	case kindDetails:
		return d.object(b, i, levelDetails, pathDetails, sp, depth)
	}
	return d.skipValue(b, i, depth)
}

// future reports whether the instant tsNs (Unix nanoseconds, >= 0) is after
// recordTime plus MaxFutureSkew, as time.Unix(0, tsNs).After(recordTime.Add(
// MaxFutureSkew)) would, in integer seconds and nanoseconds: building and
// comparing the time.Time values cost more than the rest of finish.
func (d *Decoder) future(tsNs int64, recordTime time.Time) bool {
	skew := d.cfg.MaxFutureSkew
	sec := recordTime.Unix() + int64(skew/time.Second)
	nsec := int64(recordTime.Nanosecond()) + int64(skew%time.Second)
	switch {
	case nsec >= 1e9:
		sec, nsec = sec+1, nsec-1e9
	case nsec < 0: // a negative skew; Config.Validate refuses it, but be exact
		sec, nsec = sec-1, nsec+1e9
	}
	evSec, evNsec := tsNs/1e9, tsNs%1e9
	return evSec > sec || evSec == sec && evNsec > nsec
}

// object reads a nested contract object at i. null means absent; any other
// type is wrong_type at path.
func (d *Decoder) object(b []byte, i int, lvl level, path string, sp spelling, depth int) int {
	switch b[i] {
	case '{':
		return d.members(b, i+1, lvl, depth)
	case 'n':
		return d.scanLiteral(b, i, "null")
	}
	end := d.skipValue(b, i, depth)
	if end >= 0 && d.err == nil {
		d.err = &RejectError{Reason: ReasonWrongType, Field: path,
			Detail: fmt.Sprintf("%s: want object, got %s", keyOf(sp), typeName(b[i]))}
	}
	return end
}

// finish applies the checks that need the whole message and fills ev.
func (d *Decoder) finish(recordTime time.Time, ev *Event) error {
	s := &d.slots
	for _, f := range requiredFields {
		sl := &s[f]
		switch {
		case !sl.set && sl.null:
			return &RejectError{Reason: ReasonMissingField, Field: fieldPath[f], Detail: "null"}
		case !sl.set:
			return &RejectError{Reason: ReasonMissingField, Field: fieldPath[f], Detail: "absent"}
		case f == fieldTimestamp && sl.n == emptyTimestamp, f != fieldTimestamp && sl.len == 0:
			return &RejectError{Reason: ReasonEmptyField, Field: fieldPath[f], Detail: `""`}
		}
	}

	u := Usage{
		InputTokens:       s[fieldInputTokens].n,
		InputTextTokens:   s[fieldTextTokens].n,
		InputImageTokens:  s[fieldImageTokens].n,
		InputCachedTokens: s[fieldCachedTokens].n,
		OutputTokens:      s[fieldOutputTokens].n,
		TotalTokens:       s[fieldTotalTokens].n,
	}
	sum := u.InputTokens + u.OutputTokens // each <= MaxCount: cannot overflow
	if !s[fieldTotalTokens].set {
		// A derived total above MaxCount would break the bound every stored
		// count obeys, so it is rejected like a reported one.
		if sum > MaxCount {
			return &RejectError{Reason: ReasonCountTooLarge, Field: fieldPath[fieldTotalTokens],
				Detail: fmt.Sprintf("derived input_tokens + output_tokens = %d exceeds %d", sum, uint64(MaxCount))}
		}
		u.TotalTokens = sum
	}

	tsNs := int64(s[fieldTimestamp].n)
	if recordTime.IsZero() {
		recordTime = time.Now()
	}
	if d.future(tsNs, recordTime) {
		eventTime := time.Unix(0, tsNs)
		return &RejectError{Reason: ReasonFutureTimestamp, Field: fieldPath[fieldTimestamp],
			Detail: fmt.Sprintf("%s is more than %s after the record time %s",
				eventTime.UTC().Format(time.RFC3339Nano), d.cfg.MaxFutureSkew, recordTime.UTC().Format(time.RFC3339Nano))}
	}

	*ev = Event{
		ID:          d.str(fieldID),
		TimeMs:      tsNs / 1e6, // truncates: never moves an event into a later window
		WorkspaceID: d.str(fieldWorkspaceID),
		ProjectID:   d.str(fieldProjectID),
		APIKeyID:    d.str(fieldAPIKeyID),
		Provider:    d.str(fieldProvider),
		Model:       d.str(fieldModel),
		Endpoint:    d.str(fieldEndpoint),
		StatusCode:  int32(s[fieldStatusCode].n), // <= 999, checked before it was stored
		LatencyMs:   s[fieldLatencyMs].n,
		Usage:       u,
		// Parts that do not add up are kept as reported; see docs/event-contract.md.
		Inconsistent: u.InputTextTokens+u.InputImageTokens > u.InputTokens ||
			u.InputCachedTokens > u.InputTokens ||
			u.TotalTokens != sum,
	}
	return nil
}
