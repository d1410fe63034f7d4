package events

import (
	"bytes"
	"fmt"
	"time"

	"github.com/valyala/fastjson"
)

// Paths of the usage objects, for wrong_type rejections of the objects themselves.
const (
	pathUsage   = "usage"
	pathDetails = "usage.input_tokens_details"
)

// Decoder decodes and validates usage events. It reuses its parser and
// buffers across calls so that decoding a valid event does not allocate.
//
// A Decoder is not safe for concurrent use: run one per partition goroutine.
type Decoder struct {
	cfg   Config
	p     fastjson.Parser
	num   []byte // raw text of the number being checked; reused
	slots [numFields]slot
	err   *RejectError // first rejection of the current Decode

	// Visitors bound once: a method value created per call could be moved to
	// the heap when passed to Object.Visit, costing an allocation per object.
	visitTop, visitUsage, visitDetails func(key []byte, v *fastjson.Value)
}

// NewDecoder returns a Decoder bounded by cfg. cfg is expected to have passed
// Config.Validate (the caller validates configuration once, at the edge);
// with a zero MaxMessageBytes every message would be rejected as oversized.
func NewDecoder(cfg Config) *Decoder {
	d := &Decoder{cfg: cfg}
	d.visitTop = d.top
	d.visitUsage = d.usage
	d.visitDetails = d.details
	return d
}

// Decode parses one Kafka message value. recordTime is the Kafka record
// timestamp, the reference for the future-skew check (if it is zero, the wall
// clock is used). On success it fills *ev and returns nil; ev's byte slices
// alias the Decoder's buffers and are valid until the next Decode. Otherwise
// it returns a *RejectError and leaves *ev zeroed.
func (d *Decoder) Decode(value []byte, recordTime time.Time, ev *Event) error {
	*ev = Event{}
	if len(value) > d.cfg.MaxMessageBytes {
		return &RejectError{Reason: ReasonOversized,
			Detail: fmt.Sprintf("%d bytes, max %d", len(value), d.cfg.MaxMessageBytes)}
	}
	root, err := d.p.ParseBytes(value)
	if err != nil {
		return &RejectError{Reason: ReasonInvalidJSON, Detail: err.Error()}
	}
	// fastjson's parser is lenient (it takes NaN, 01, 1.2.3 and bad escapes);
	// the validator holds the text to RFC 8259. It runs second because only
	// the parser limits nesting depth, which bounds the validator's recursion.
	if err := fastjson.ValidateBytes(value); err != nil {
		return &RejectError{Reason: ReasonInvalidJSON, Detail: err.Error()}
	}
	if bytes.IndexByte(value, '\\') >= 0 {
		if detail := checkSurrogates(value); detail != "" {
			return &RejectError{Reason: ReasonInvalidJSON, Detail: detail}
		}
	}
	obj, err := root.Object()
	if err != nil {
		return &RejectError{Reason: ReasonNotObject, Detail: "top-level value is " + root.Type().String()}
	}

	d.slots = [numFields]slot{}
	d.err = nil
	obj.Visit(d.visitTop)
	if d.err != nil {
		return d.err
	}
	return d.finish(recordTime, ev)
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
		case f == fieldTimestamp && sl.n == emptyTimestamp, f != fieldTimestamp && len(sl.str) == 0:
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
	if eventTime := time.Unix(0, tsNs); eventTime.After(recordTime.Add(d.cfg.MaxFutureSkew)) {
		return &RejectError{Reason: ReasonFutureTimestamp, Field: fieldPath[fieldTimestamp],
			Detail: fmt.Sprintf("%s is more than %s after the record time %s",
				eventTime.UTC().Format(time.RFC3339Nano), d.cfg.MaxFutureSkew, recordTime.UTC().Format(time.RFC3339Nano))}
	}

	*ev = Event{
		ID:          s[fieldID].str,
		TimeMs:      tsNs / 1e6, // truncates: never moves an event into a later window
		WorkspaceID: s[fieldWorkspaceID].str,
		ProjectID:   s[fieldProjectID].str,
		APIKeyID:    s[fieldAPIKeyID].str,
		Provider:    s[fieldProvider].str,
		Model:       s[fieldModel].str,
		Endpoint:    s[fieldEndpoint].str,
		StatusCode:  int32(s[fieldStatusCode].n), // <= 999, checked in setStatus
		LatencyMs:   s[fieldLatencyMs].n,
		Usage:       u,
		// Parts that do not add up are kept as reported; see docs/event-contract.md.
		Inconsistent: u.InputTextTokens+u.InputImageTokens > u.InputTokens ||
			u.InputCachedTokens > u.InputTokens ||
			u.TotalTokens != sum,
	}
	return nil
}

// top visits the keys of the event object. Unknown keys are ignored so that
// producers can add fields without a coordinated deploy.
func (d *Decoder) top(key []byte, v *fastjson.Value) {
	if d.err != nil {
		return
	}
	switch string(key) { // the conversion in a switch does not allocate
	case "id":
		d.setString(fieldID, key, v)
	case "timestamp":
		d.setTimestamp(key, v)
	case "workspace_id", "workspaceId":
		d.setString(fieldWorkspaceID, key, v)
	case "project_id", "projectId":
		d.setString(fieldProjectID, key, v)
	case "api_key_id", "apiKeyId":
		d.setString(fieldAPIKeyID, key, v)
	case "provider":
		d.setString(fieldProvider, key, v)
	case "model":
		d.setString(fieldModel, key, v)
	case "endpoint":
		d.setString(fieldEndpoint, key, v)
	case "status_code", "statusCode":
		d.setStatus(key, v)
	case "latency_ms", "latencyMs":
		d.setCount(fieldLatencyMs, key, v)
	case "usage":
		d.object(pathUsage, key, v, d.visitUsage)
	}
}

// usage visits the keys of a usage object. The chat-completions names
// (prompt_tokens, completion_tokens, prompt_tokens_details) are spellings of
// the same fields, so a message may mix styles as long as values agree.
func (d *Decoder) usage(key []byte, v *fastjson.Value) {
	if d.err != nil {
		return
	}
	switch string(key) {
	case "input_tokens", "inputTokens", "prompt_tokens", "promptTokens":
		d.setCount(fieldInputTokens, key, v)
	case "output_tokens", "outputTokens", "completion_tokens", "completionTokens":
		d.setCount(fieldOutputTokens, key, v)
	case "total_tokens", "totalTokens":
		d.setCount(fieldTotalTokens, key, v)
	case "input_tokens_details", "inputTokensDetails", "prompt_tokens_details", "promptTokensDetails":
		d.object(pathDetails, key, v, d.visitDetails)
	}
}

// details visits the keys of an input-tokens details object. Other keys
// (audio_tokens, and everything in completion_tokens_details) are ignored.
func (d *Decoder) details(key []byte, v *fastjson.Value) {
	if d.err != nil {
		return
	}
	switch string(key) {
	case "text_tokens", "textTokens":
		d.setCount(fieldTextTokens, key, v)
	case "image_tokens", "imageTokens":
		d.setCount(fieldImageTokens, key, v)
	case "cached_tokens", "cachedTokens":
		d.setCount(fieldCachedTokens, key, v)
	}
}

// object walks a nested object with visit. null means absent. Repeated or
// differently spelled objects are all walked, so their fields merge and any
// field given twice with different values is a conflict.
func (d *Decoder) object(path string, key []byte, v *fastjson.Value, visit func([]byte, *fastjson.Value)) {
	switch t := v.Type(); t {
	case fastjson.TypeNull:
	case fastjson.TypeObject:
		o, _ := v.Object() // cannot fail: the type is object
		o.Visit(visit)
	default:
		if d.err == nil {
			d.err = &RejectError{Reason: ReasonWrongType, Field: path,
				Detail: fmt.Sprintf("%s: want object, got %s", key, t)}
		}
	}
}

// checkSurrogates rejects \u escapes that encode an unpaired UTF-16
// surrogate. RFC 8259 section 8.2 leaves their meaning undefined, and
// fastjson's unescaping would keep them as literal text or drop the escape
// that follows, silently changing a value. value must already be valid JSON,
// so every backslash starts a well-formed escape inside a string.
// It returns a detail, empty if the text is fine.
func checkSurrogates(value []byte) string {
	for i := 0; i < len(value); i++ {
		if value[i] != '\\' {
			continue
		}
		if value[i+1] != 'u' {
			i++ // skip the escaped character, which may itself be a backslash
			continue
		}
		r := hex4(value[i+2 : i+6])
		i += 5
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return "unpaired UTF-16 surrogate escape in string"
		case r >= 0xD800 && r <= 0xDBFF:
			next := value[i+1:]
			if len(next) < 6 || next[0] != '\\' || next[1] != 'u' {
				return "unpaired UTF-16 surrogate escape in string"
			}
			if lo := hex4(next[2:6]); lo < 0xDC00 || lo > 0xDFFF {
				return "unpaired UTF-16 surrogate escape in string"
			}
			i += 6
		}
	}
	return ""
}

// hex4 decodes four hex digits already validated by the JSON validator.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}
