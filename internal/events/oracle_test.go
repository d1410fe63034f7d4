package events_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// reported is what a message says about the contract's fields, read with
// encoding/json and contractKeys, independently of the decoder: for each
// snake_case path, every non-null value given under any spelling, in repeated
// keys and in repeated or differently spelled usage and details objects.
type reported struct {
	values map[string][]json.RawMessage
	// repeatedKey is set when an object names a contract key twice. A JSON
	// Schema validator then sees only one of the values (encoding/json keeps
	// the last), which may be a null the decoder ignores.
	repeatedKey bool
}

// readReported parses payload, which must be one JSON object.
func readReported(payload []byte) (reported, error) {
	r := reported{values: map[string][]json.RawMessage{}}
	if !json.Valid(payload) {
		return r, fmt.Errorf("encoding/json: not valid JSON")
	}
	return r, r.object(bytes.TrimSpace(payload), levelTop)
}

// object records the members of the JSON object raw, found at level.
func (r *reported) object(raw json.RawMessage, level string) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fmt.Errorf("%q: want an object, got %s", level, raw)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key := tok.(string) // object keys are strings
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return err
		}
		snake, ok := contractKeys[level][key]
		if !ok {
			continue // unknown keys are ignored, at any level
		}
		r.repeatedKey = r.repeatedKey || seen[key]
		seen[key] = true
		path := snake
		if level != levelTop {
			path = level + "." + snake
		}
		switch {
		case string(v) == "null": // null gives no value
		case path == levelUsage || path == levelDetails:
			if err := r.object(v, path); err != nil {
				return err
			}
		default:
			r.values[path] = append(r.values[path], v)
		}
	}
	return nil
}

// one returns the value given for path, nil if none, and fails t if the
// message gave different values: an accepted message never does.
func (r *reported) one(t *testing.T, path string, parse func(json.RawMessage) (any, error)) any {
	t.Helper()
	var first any
	for i, raw := range r.values[path] {
		v, err := parse(raw)
		if err != nil {
			t.Fatalf("%s: accepted value %s: %v", path, raw, err)
		}
		if i > 0 && v != first {
			t.Fatalf("%s: accepted message gives %v and %v", path, first, v)
		}
		first = v
	}
	return first
}

func (r *reported) str(t *testing.T, path string) string {
	t.Helper()
	s, _ := r.one(t, path, func(raw json.RawMessage) (any, error) {
		var s string
		return s, json.Unmarshal(raw, &s)
	}).(string)
	return s
}

// count returns the value of a count and whether one was given.
func (r *reported) count(t *testing.T, path string) (uint64, bool) {
	t.Helper()
	n, ok := r.one(t, path, func(raw json.RawMessage) (any, error) {
		return strconv.ParseUint(string(raw), 10, 64)
	}).(uint64)
	return n, ok
}

// instant returns the timestamp in Unix nanoseconds, read with the standard
// library: time.Parse for RFC 3339 (which takes only upper-case T and Z), and
// epoch milliseconds times 10^6.
func (r *reported) instant(t *testing.T, path string) int64 {
	t.Helper()
	ns, _ := r.one(t, path, func(raw json.RawMessage) (any, error) {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			ms, err := strconv.ParseInt(string(raw), 10, 64)
			return ms * int64(time.Millisecond), err
		}
		tm, err := time.Parse(time.RFC3339Nano, strings.ToUpper(s))
		return tm.UnixNano(), err
	}).(int64)
	return ns
}

// expectedView is the event docs/event-contract.md says an accepted payload
// decodes to, computed from its encoding/json reading. It shares no code with
// the decoder: a wrong spelling, default, derived total or inconsistency flag
// in either shows up as a difference.
func expectedView(t *testing.T, payload []byte) view {
	t.Helper()
	r, err := readReported(payload)
	if err != nil {
		t.Fatalf("decoder accepted %q, which encoding/json reads differently: %v", payload, err)
	}
	input, _ := r.count(t, "usage.input_tokens")
	text, _ := r.count(t, "usage.input_tokens_details.text_tokens")
	image, _ := r.count(t, "usage.input_tokens_details.image_tokens")
	cached, _ := r.count(t, "usage.input_tokens_details.cached_tokens")
	output, _ := r.count(t, "usage.output_tokens")
	total, totalGiven := r.count(t, "usage.total_tokens")
	if !totalGiven {
		total = input + output
	}
	// "Inconsistent usage", read the other way round: usage adds up when the
	// text and image parts fit in the input together, the cached part fits in
	// the input, and a total the producer gave is exactly input plus output
	// (a derived total adds up by definition). Each count is at most 10^12,
	// so input-text after text <= input cannot wrap.
	partsFit := text <= input && image <= input-text && cached <= input
	totalAddsUp := !totalGiven || total == input+output
	status, _ := r.count(t, "status_code")
	latency, _ := r.count(t, "latency_ms")
	ms := r.instant(t, "timestamp") / int64(time.Millisecond) // >= 0: truncation is the floor
	return view{
		ID:          r.str(t, "id"),
		Time:        time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		TimeMs:      ms,
		WorkspaceID: r.str(t, "workspace_id"),
		ProjectID:   r.str(t, "project_id"),
		APIKeyID:    r.str(t, "api_key_id"),
		Provider:    r.str(t, "provider"),
		Model:       r.str(t, "model"),
		Endpoint:    r.str(t, "endpoint"),
		StatusCode:  int32(status), // an accepted status_code is at most 999
		LatencyMs:   latency,
		Usage: usageView{
			InputTokens: input, InputTextTokens: text, InputImageTokens: image, InputCachedTokens: cached,
			OutputTokens: output, TotalTokens: total,
		},
		Inconsistent: !(partsFit && totalAddsUp),
	}
}

// TestExpectedViewKnownCases pins the oracle itself, and the decoder, to
// hand-computed events, so that a mistake in the oracle cannot hide a
// matching mistake in the decoder.
func TestExpectedViewKnownCases(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want view
	}{
		{"required only", obj(req), base(func(v *view) {})},
		{"consistent: parts sum to input, cached within", obj(req, `"usage":{"input_tokens":10,"input_tokens_details":{"text_tokens":7,"image_tokens":3,"cached_tokens":10},"output_tokens":2,"total_tokens":12}`),
			base(func(v *view) { v.Usage = usageView{10, 7, 3, 10, 2, 12} })},
		{"text+image one over input", obj(req, `"usage":{"input_tokens":10,"input_tokens_details":{"text_tokens":8,"image_tokens":3}}`),
			base(func(v *view) { v.Usage, v.Inconsistent = usageView{10, 8, 3, 0, 0, 10}, true })},
		{"image alone over input", obj(req, `"usage":{"input_tokens":2,"input_tokens_details":{"image_tokens":3}}`),
			base(func(v *view) { v.Usage, v.Inconsistent = usageView{2, 0, 3, 0, 0, 2}, true })},
		{"cached one over input", obj(req, `"usage":{"promptTokens":10,"promptTokensDetails":{"cachedTokens":11}}`),
			base(func(v *view) { v.Usage, v.Inconsistent = usageView{10, 0, 0, 11, 0, 10}, true })},
		{"reported total off by one", obj(req, `"usage":{"inputTokens":10,"outputTokens":5,"totalTokens":14}`),
			base(func(v *view) { v.Usage, v.Inconsistent = usageView{10, 0, 0, 0, 5, 14}, true })},
		{"reported total zero, parts zero", obj(req, `"usage":{"total_tokens":0}`), base(func(v *view) {})},
		{"null total is derived", obj(req, `"usage":{"prompt_tokens":4,"completion_tokens":1,"total_tokens":null}`),
			base(func(v *view) { v.Usage = usageView{4, 0, 0, 0, 1, 5} })},
		{"usage objects merge", obj(req, `"usage":{"input_tokens":5},"usage":{"output_tokens":1,"total_tokens":7}`),
			base(func(v *view) { v.Usage, v.Inconsistent = usageView{5, 0, 0, 0, 1, 7}, true })},
		{"camelCase dimensions and status", obj(`"id":"e1","timestamp":"2026-11-27t11:15:30.123456+01:00","workspaceId":"ws","model":"m","endpoint":"ep"`,
			`"projectId":"p","apiKeyId":"k","statusCode":404,"latencyMs":3`),
			base(func(v *view) { v.ProjectID, v.APIKeyID, v.StatusCode, v.LatencyMs = "p", "k", 404, 3 })},
		{"epoch milliseconds", obj(ids, `"timestamp":1795774530123`), base(func(v *view) {})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := expectedView(t, []byte(tt.in)); got != tt.want {
				t.Errorf("expectedView(%s)\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
			if got, _, err := decode([]byte(tt.in)); err != nil || got != tt.want {
				t.Errorf("Decode(%s) = %v\n got %+v\nwant %+v", tt.in, err, got, tt.want)
			}
		})
	}
}
