package events_test

import (
	"strings"
	"testing"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/events"
)

// Required fields with valid values; cases add to them. ids lacks the
// timestamp, for cases about timestamps.
const (
	ids = `"id":"e1","workspace_id":"ws","model":"m","endpoint":"ep"`
	req = `"timestamp":"2026-11-27T10:15:30.123Z",` + ids
)

// obj joins members into a JSON object.
func obj(members ...string) string { return "{" + strings.Join(members, ",") + "}" }

// base is what decoding obj(req) yields; accept cases describe their changes to it.
func base(change func(v *view)) view {
	v := view{ID: "e1", Time: "2026-11-27T10:15:30.123Z", TimeMs: 1795774530123, WorkspaceID: "ws", Model: "m", Endpoint: "ep"}
	change(&v)
	return v
}

func TestDecodeAccepts(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want view
	}{
		{"required only: defaults", obj(req), base(func(v *view) {})},
		{"all snake_case", obj(req, `"project_id":"p","api_key_id":"k","provider":"openai","status_code":201,"latency_ms":7`,
			`"usage":{"input_tokens":50,"input_tokens_details":{"text_tokens":40,"image_tokens":10,"cached_tokens":5},"output_tokens":4,"total_tokens":54}`),
			base(func(v *view) {
				v.ProjectID, v.APIKeyID, v.Provider, v.StatusCode, v.LatencyMs = "p", "k", "openai", 201, 7
				v.Usage = usageView{50, 40, 10, 5, 4, 54}
			})},
		{"all camelCase", obj(`"id":"e1","timestamp":"2026-11-27T10:15:30.123Z","workspaceId":"ws","model":"m","endpoint":"ep"`,
			`"projectId":"p","apiKeyId":"k","statusCode":500,"latencyMs":9`,
			`"usage":{"inputTokens":50,"inputTokensDetails":{"textTokens":40,"imageTokens":10,"cachedTokens":5},"outputTokens":4,"totalTokens":54}`),
			base(func(v *view) {
				v.ProjectID, v.APIKeyID, v.StatusCode, v.LatencyMs = "p", "k", 500, 9
				v.Usage = usageView{50, 40, 10, 5, 4, 54}
			})},
		{"chat-style snake", obj(req, `"usage":{"prompt_tokens":12,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":8,"audio_tokens":1},"completion_tokens_details":{"reasoning_tokens":2}}`),
			base(func(v *view) {
				v.Usage = usageView{InputTokens: 12, InputCachedTokens: 8, OutputTokens: 3, TotalTokens: 15}
			})},
		{"chat-style camel", obj(req, `"usage":{"promptTokens":12,"completionTokens":3,"promptTokensDetails":{"cachedTokens":8}}`),
			base(func(v *view) {
				v.Usage = usageView{InputTokens: 12, InputCachedTokens: 8, OutputTokens: 3, TotalTokens: 15}
			})},
		{"mixed spellings, equal values", obj(req, `"workspaceId":"ws","usage":{"input_tokens":12,"prompt_tokens":12,"outputTokens":3,"completion_tokens":3,"input_tokens_details":{"image_tokens":2},"prompt_tokens_details":{"cached_tokens":1}}`),
			base(func(v *view) {
				v.Usage = usageView{InputTokens: 12, InputImageTokens: 2, InputCachedTokens: 1, OutputTokens: 3, TotalTokens: 15}
			})},
		{"duplicate key, equal value", obj(req, `"model":"m","usage":{"output_tokens":3},"usage":{"output_tokens":3}`),
			base(func(v *view) { v.Usage = usageView{OutputTokens: 3, TotalTokens: 3} })},
		{"escaped key is its unescaped name", obj(req, `"pro\u006aect_id":"p"`), base(func(v *view) { v.ProjectID = "p" })},
		{"null optional fields are absent", obj(req, `"project_id":null,"status_code":null,"latency_ms":null,"usage":{"input_tokens":null,"input_tokens_details":null,"total_tokens":null}`),
			base(func(v *view) {})},
		{"null beside a value is not a conflict", obj(req, `"projectId":null,"project_id":"p","model":null`), base(func(v *view) { v.ProjectID = "p" })},
		{"null usage", obj(req, `"usage":null`), base(func(v *view) {})},
		{"empty optional string", obj(req, `"provider":""`), base(func(v *view) {})},
		{"unknown fields ignored", obj(req, `"x":[1,{"y":null}],"usage":{"reasoning_tokens":5,"input_tokens_details":{"audio_tokens":"n/a"}}`), base(func(v *view) {})},
		{"status 0..999", obj(req, `"status_code":999`), base(func(v *view) { v.StatusCode = 999 })},
		{"count at MaxCount", obj(req, `"latency_ms":1000000000000`), base(func(v *view) { v.LatencyMs = events.MaxCount })},
		{"string at MaxFieldBytes", obj(req, `"api_key_id":"`+strings.Repeat("k", events.MaxFieldBytes)+`"`),
			base(func(v *view) { v.APIKeyID = strings.Repeat("k", events.MaxFieldBytes) })},
		{"escaped string measured unescaped", obj(req, `"api_key_id":"`+strings.Repeat(`\u006b`, events.MaxFieldBytes)+`"`),
			base(func(v *view) { v.APIKeyID = strings.Repeat("k", events.MaxFieldBytes) })},
		{"multi-byte UTF-8", obj(req, `"project_id":"prøject 🚀"`), base(func(v *view) { v.ProjectID = "prøject 🚀" })},
		{"surrogate pair escape", obj(req, `"project_id":"\ud83d\ude80"`), base(func(v *view) { v.ProjectID = "🚀" })},
		{"whitespace around JSON", " \n\t" + obj(req) + "\r\n ", base(func(v *view) {})},

		// Timestamps.
		{"epoch milliseconds", obj(`"timestamp":1795774530123`, ids), base(func(v *view) {})},
		{"epoch zero", obj(ids, `"timestamp":0`), base(func(v *view) { v.Time, v.TimeMs = "1970-01-01T00:00:00.000Z", 0 })},
		{"offset +05:30", obj(ids, `"timestamp":"2026-11-27T15:45:30.123+05:30"`), base(func(v *view) {})},
		{"offset -08:00", obj(ids, `"timestamp":"2026-11-27T02:15:30.123-08:00"`), base(func(v *view) {})},
		{"offset crosses the date", obj(ids, `"timestamp":"2026-11-26T23:15:30.123-11:00"`), base(func(v *view) {})},
		{"lowercase t and z", obj(ids, `"timestamp":"2026-11-27t10:15:30.123z"`), base(func(v *view) {})},
		{"no fraction", obj(ids, `"timestamp":"2026-11-27T10:15:30Z"`), base(func(v *view) { v.Time, v.TimeMs = "2026-11-27T10:15:30.000Z", 1795774530000 })},
		{"one fraction digit", obj(ids, `"timestamp":"2026-11-27T10:15:30.1Z"`), base(func(v *view) { v.Time, v.TimeMs = "2026-11-27T10:15:30.100Z", 1795774530100 })},
		{"fraction truncated, not rounded", obj(ids, `"timestamp":"2026-11-27T10:15:30.1239999999999Z"`), base(func(v *view) {})},
		{"same instant in three spellings", obj(req, `"timestamp":1795774530123,"timestamp":"2026-11-27T11:15:30.123+01:00"`), base(func(v *view) {})},
		{"exactly MaxFutureSkew ahead", obj(ids, `"timestamp":"2026-11-29T00:00:00Z"`), base(func(v *view) { v.Time, v.TimeMs = "2026-11-29T00:00:00.000Z", 1795910400000 })},

		// Inconsistent usage is kept as reported and flagged.
		{"text+image > input", obj(req, `"usage":{"input_tokens":10,"input_tokens_details":{"text_tokens":8,"image_tokens":3}}`),
			base(func(v *view) { v.Usage, v.Inconsistent = usageView{10, 8, 3, 0, 0, 10}, true })},
		{"cached > input", obj(req, `"usage":{"prompt_tokens":10,"prompt_tokens_details":{"cached_tokens":11}}`),
			base(func(v *view) {
				v.Usage, v.Inconsistent = usageView{InputTokens: 10, InputCachedTokens: 11, TotalTokens: 10}, true
			})},
		{"total != input+output", obj(req, `"usage":{"input_tokens":10,"output_tokens":5,"total_tokens":16}`),
			base(func(v *view) {
				v.Usage, v.Inconsistent = usageView{InputTokens: 10, OutputTokens: 5, TotalTokens: 16}, true
			})},
		{"details without input", obj(req, `"usage":{"input_tokens_details":{"text_tokens":1}}`),
			base(func(v *view) { v.Usage, v.Inconsistent = usageView{InputTextTokens: 1}, true })},
		{"text+image = input is consistent", obj(req, `"usage":{"input_tokens":10,"input_tokens_details":{"text_tokens":7,"image_tokens":3,"cached_tokens":10}}`),
			base(func(v *view) { v.Usage = usageView{10, 7, 3, 10, 0, 10} })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := decode([]byte(tt.in))
			if err != nil {
				t.Fatalf("Decode(%s) = %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("Decode(%s)\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
		})
	}
}

// rejectCases cover every rule; TestRejectCasesCoverReasons checks that every
// Reason appears at least once.
var rejectCases = []struct {
	name string
	in   string
	want rejection
}{
	{"oversized", obj(req, `"pad":"`+strings.Repeat("x", events.DefaultConfig().MaxMessageBytes)+`"`), rejection{events.ReasonOversized, ""}},

	{"empty message", ``, rejection{events.ReasonInvalidJSON, ""}},
	{"truncated", `{"id":"e1"`, rejection{events.ReasonInvalidJSON, ""}},
	{"trailing garbage", obj(req) + `x`, rejection{events.ReasonInvalidJSON, ""}},
	{"two objects", obj(req) + obj(req), rejection{events.ReasonInvalidJSON, ""}},
	{"NaN literal", obj(req, `"latency_ms":NaN`), rejection{events.ReasonInvalidJSON, ""}},
	{"Infinity in unknown field", obj(req, `"x":-Inf`), rejection{events.ReasonInvalidJSON, ""}},
	{"leading zero", obj(req, `"latency_ms":07`), rejection{events.ReasonInvalidJSON, ""}},
	{"plus sign", obj(req, `"latency_ms":+7`), rejection{events.ReasonInvalidJSON, ""}},
	{"bad escape", obj(req, `"x":"\q"`), rejection{events.ReasonInvalidJSON, ""}},
	{"raw control char", obj(req, "\"x\":\"a\tb\""), rejection{events.ReasonInvalidJSON, ""}},
	{"lone high surrogate", obj(req, `"project_id":"\ud83d"`), rejection{events.ReasonInvalidJSON, ""}},
	{"high surrogate before non-surrogate", obj(req, `"project_id":"\ud83d\u0041"`), rejection{events.ReasonInvalidJSON, ""}},
	{"lone low surrogate", obj(req, `"x":"\ude80"`), rejection{events.ReasonInvalidJSON, ""}},
	{"too deep", obj(req, `"x":`+strings.Repeat("[", 400)+strings.Repeat("]", 400)), rejection{events.ReasonInvalidJSON, ""}},

	{"array", `[` + obj(req) + `]`, rejection{events.ReasonNotObject, ""}},
	{"null", `null`, rejection{events.ReasonNotObject, ""}},
	{"number", `42`, rejection{events.ReasonNotObject, ""}},

	{"no id", obj(`"timestamp":"2026-11-27T10:15:30Z","workspace_id":"ws","model":"m","endpoint":"ep"`), rejection{events.ReasonMissingField, "id"}},
	{"no timestamp", obj(`"id":"e1","workspace_id":"ws","model":"m","endpoint":"ep"`), rejection{events.ReasonMissingField, "timestamp"}},
	{"no workspace_id", obj(`"id":"e1","timestamp":"2026-11-27T10:15:30Z","model":"m","endpoint":"ep"`), rejection{events.ReasonMissingField, "workspace_id"}},
	{"no model", obj(`"id":"e1","timestamp":"2026-11-27T10:15:30Z","workspace_id":"ws","endpoint":"ep"`), rejection{events.ReasonMissingField, "model"}},
	{"no endpoint", obj(`"id":"e1","timestamp":"2026-11-27T10:15:30Z","workspace_id":"ws","model":"m"`), rejection{events.ReasonMissingField, "endpoint"}},
	{"null required", obj(`"id":"e1","timestamp":"2026-11-27T10:15:30Z","workspaceId":null,"model":"m","endpoint":"ep"`), rejection{events.ReasonMissingField, "workspace_id"}},
	{"null timestamp", obj(`"id":"e1","timestamp":null,"workspace_id":"ws","model":"m","endpoint":"ep"`), rejection{events.ReasonMissingField, "timestamp"}},
	{"empty object", `{}`, rejection{events.ReasonMissingField, "id"}},

	{"empty id", obj(`"id":"","timestamp":"2026-11-27T10:15:30Z","workspace_id":"ws","model":"m","endpoint":"ep"`), rejection{events.ReasonEmptyField, "id"}},
	{"empty timestamp", obj(`"id":"e1","timestamp":"","workspace_id":"ws","model":"m","endpoint":"ep"`), rejection{events.ReasonEmptyField, "timestamp"}},
	{"empty model", obj(`"id":"e1","timestamp":"2026-11-27T10:15:30Z","workspace_id":"ws","model":"","endpoint":"ep"`), rejection{events.ReasonEmptyField, "model"}},

	{"id number", obj(`"id":7`, req), rejection{events.ReasonWrongType, "id"}},
	{"workspaceId bool", obj(`"workspaceId":true`, req), rejection{events.ReasonWrongType, "workspace_id"}},
	{"provider object", obj(req, `"provider":{}`), rejection{events.ReasonWrongType, "provider"}},
	{"invalid UTF-8", obj(req, "\"api_key_id\":\"k\xc3\x28\""), rejection{events.ReasonWrongType, "api_key_id"}},
	{"count as string", obj(req, `"usage":{"input_tokens":"40"}`), rejection{events.ReasonWrongType, "usage.input_tokens"}},
	{"count as bool", obj(req, `"usage":{"input_tokens_details":{"cachedTokens":false}}`), rejection{events.ReasonWrongType, "usage.input_tokens_details.cached_tokens"}},
	{"latency as array", obj(req, `"latencyMs":[1]`), rejection{events.ReasonWrongType, "latency_ms"}},
	{"status as string", obj(req, `"status_code":"200"`), rejection{events.ReasonWrongType, "status_code"}},
	{"status above 999", obj(req, `"statusCode":1000`), rejection{events.ReasonWrongType, "status_code"}},
	{"usage string", obj(req, `"usage":"50"`), rejection{events.ReasonWrongType, "usage"}},
	{"details array", obj(req, `"usage":{"inputTokensDetails":[]}`), rejection{events.ReasonWrongType, "usage.input_tokens_details"}},
	{"timestamp bool", obj(ids, `"timestamp":false`), rejection{events.ReasonWrongType, "timestamp"}},
	{"timestamp object", obj(ids, `"timestamp":{"seconds":1}`), rejection{events.ReasonWrongType, "timestamp"}},

	{"id too long", obj(`"id":"`+strings.Repeat("i", events.MaxFieldBytes+1)+`"`, req), rejection{events.ReasonFieldTooLong, "id"}},
	{"dimension too long in bytes", obj(req, `"project_id":"`+strings.Repeat("é", events.MaxFieldBytes/2+1)+`"`), rejection{events.ReasonFieldTooLong, "project_id"}},

	{"negative count", obj(req, `"usage":{"output_tokens":-1}`), rejection{events.ReasonNegativeCount, "usage.output_tokens"}},
	{"negative zero", obj(req, `"usage":{"completion_tokens":-0}`), rejection{events.ReasonNegativeCount, "usage.output_tokens"}},
	{"negative fraction", obj(req, `"latency_ms":-1.5`), rejection{events.ReasonNegativeCount, "latency_ms"}},
	{"negative status", obj(req, `"status_code":-200`), rejection{events.ReasonNegativeCount, "status_code"}},

	{"fraction", obj(req, `"usage":{"input_tokens":1.5}`), rejection{events.ReasonNonInteger, "usage.input_tokens"}},
	{"integral fraction", obj(req, `"usage":{"input_tokens_details":{"text_tokens":40.0}}`), rejection{events.ReasonNonInteger, "usage.input_tokens_details.text_tokens"}},
	{"exponent", obj(req, `"usage":{"totalTokens":1e3}`), rejection{events.ReasonNonInteger, "usage.total_tokens"}},
	{"huge exponent", obj(req, `"usage":{"total_tokens":1E400}`), rejection{events.ReasonNonInteger, "usage.total_tokens"}},
	{"status fraction", obj(req, `"status_code":200.0`), rejection{events.ReasonNonInteger, "status_code"}},

	{"MaxCount+1", obj(req, `"usage":{"output_tokens":1000000000001}`), rejection{events.ReasonCountTooLarge, "usage.output_tokens"}},
	{"beyond uint64", obj(req, `"latency_ms":123456789012345678901234567890`), rejection{events.ReasonCountTooLarge, "latency_ms"}},
	{"derived total beyond MaxCount", obj(req, `"usage":{"input_tokens":1000000000000,"output_tokens":1}`), rejection{events.ReasonCountTooLarge, "usage.total_tokens"}},

	{"both spellings differ", obj(req, `"workspaceId":"other"`), rejection{events.ReasonConflictingField, "workspace_id"}},
	{"duplicate key differs", obj(req, `"model":"m2"`), rejection{events.ReasonConflictingField, "model"}},
	{"empty vs value", obj(req, `"project_id":"","projectId":"p"`), rejection{events.ReasonConflictingField, "project_id"}},
	{"input vs prompt", obj(req, `"usage":{"input_tokens":5,"prompt_tokens":6}`), rejection{events.ReasonConflictingField, "usage.input_tokens"}},
	{"output vs completionTokens", obj(req, `"usage":{"completionTokens":5,"output_tokens":6}`), rejection{events.ReasonConflictingField, "usage.output_tokens"}},
	{"cached across details spellings", obj(req, `"usage":{"input_tokens_details":{"cached_tokens":1},"prompt_tokens_details":{"cachedTokens":2}}`), rejection{events.ReasonConflictingField, "usage.input_tokens_details.cached_tokens"}},
	{"duplicate usage objects differ", obj(req, `"usage":{"output_tokens":1},"usage":{"output_tokens":2}`), rejection{events.ReasonConflictingField, "usage.output_tokens"}},
	{"statusCode vs status_code", obj(req, `"status_code":200,"statusCode":201`), rejection{events.ReasonConflictingField, "status_code"}},
	{"timestamps differ", obj(req, `"timestamp":1795774530124`), rejection{events.ReasonConflictingField, "timestamp"}},
	{"timestamps differ below the millisecond", obj(req, `"timestamp":"2026-11-27T10:15:30.1234Z"`), rejection{events.ReasonConflictingField, "timestamp"}},
	{"timestamp empty vs value", obj(req, `"timestamp":""`), rejection{events.ReasonConflictingField, "timestamp"}},

	{"month 13", obj(ids, `"timestamp":"2026-13-01T00:00:00Z"`), rejection{events.ReasonInvalidTimestamp, "timestamp"}},
	{"Feb 29 of a common year", obj(ids, `"timestamp":"2027-02-29T00:00:00Z"`), rejection{events.ReasonInvalidTimestamp, "timestamp"}},
	{"no zone", obj(ids, `"timestamp":"2026-11-27T10:15:30"`), rejection{events.ReasonInvalidTimestamp, "timestamp"}},
	{"space separator", obj(ids, `"timestamp":"2026-11-27 10:15:30Z"`), rejection{events.ReasonInvalidTimestamp, "timestamp"}},
	{"date only", obj(ids, `"timestamp":"2026-11-27"`), rejection{events.ReasonInvalidTimestamp, "timestamp"}},
	{"epoch as string", obj(ids, `"timestamp":"1795774530123"`), rejection{events.ReasonInvalidTimestamp, "timestamp"}},
	{"epoch fraction", obj(ids, `"timestamp":1795774530123.0`), rejection{events.ReasonInvalidTimestamp, "timestamp"}},
	{"epoch negative", obj(ids, `"timestamp":-1`), rejection{events.ReasonInvalidTimestamp, "timestamp"}},
	{"before 1970", obj(ids, `"timestamp":"1969-12-31T23:59:59.999Z"`), rejection{events.ReasonInvalidTimestamp, "timestamp"}},
	{"before 1970 by offset", obj(ids, `"timestamp":"1970-01-01T00:30:00+01:00"`), rejection{events.ReasonInvalidTimestamp, "timestamp"}},
	{"after 2105", obj(ids, `"timestamp":"2106-01-01T00:00:00Z"`), rejection{events.ReasonInvalidTimestamp, "timestamp"}},
	{"epoch after 2105", obj(ids, `"timestamp":4291747200000`), rejection{events.ReasonInvalidTimestamp, "timestamp"}},

	{"one ms beyond skew", obj(ids, `"timestamp":"2026-11-29T00:00:00.001Z"`), rejection{events.ReasonFutureTimestamp, "timestamp"}},
	{"far future epoch", obj(ids, `"timestamp":4102444800000`), rejection{events.ReasonFutureTimestamp, "timestamp"}},

	{"first error in document order wins", obj(`"model":1`, `"usage":{"input_tokens":-1}`), rejection{events.ReasonWrongType, "model"}},
}

func TestDecodeRejects(t *testing.T) {
	for _, tt := range rejectCases {
		t.Run(tt.name, func(t *testing.T) {
			got, rej, err := decode([]byte(tt.in))
			if rej != tt.want {
				t.Errorf("Decode(%.200s) = %v, want %+v", tt.in, err, tt.want)
			}
			if got != viewOf(&events.Event{}) {
				t.Errorf("rejected Decode left a non-zero event: %+v", got)
			}
		})
	}
}

func TestRejectCasesCoverReasons(t *testing.T) {
	seen := map[events.Reason]bool{}
	for _, tt := range rejectCases {
		seen[tt.want.Reason] = true
	}
	for _, r := range events.Reasons {
		if !seen[r] {
			t.Errorf("no reject case for reason %q", r)
		}
	}
}

// TestDecodeZeroRecordTime checks the wall-clock fallback: with no record
// timestamp, "now" is accepted and a far-future event is not.
func TestDecodeZeroRecordTime(t *testing.T) {
	d := events.NewDecoder(events.DefaultConfig())
	var ev events.Event
	now := time.Now().UTC().Format(time.RFC3339Nano)
	if err := d.Decode([]byte(obj(ids, `"timestamp":"`+now+`"`)), time.Time{}, &ev); err != nil {
		t.Errorf("event at wall-clock now: %v", err)
	}
	err := d.Decode([]byte(obj(ids, `"timestamp":"2105-12-31T00:00:00Z"`)), time.Time{}, &ev)
	if re, ok := events.AsReject(err); !ok || re.Reason != events.ReasonFutureTimestamp {
		t.Errorf("far-future event with zero record time: %v, want future_timestamp", err)
	}
}

// TestDecodeLatestTimestamp accepts the last representable instant when the
// record time allows it.
func TestDecodeLatestTimestamp(t *testing.T) {
	var ev events.Event
	in := obj(ids, `"timestamp":4291747199999`)
	rt := time.Date(2105, 12, 31, 0, 0, 0, 0, time.UTC)
	if err := events.NewDecoder(events.DefaultConfig()).Decode([]byte(in), rt, &ev); err != nil || ev.TimeMs != 4291747199999 {
		t.Errorf("Decode(%s) = %v, TimeMs %d", in, err, ev.TimeMs)
	}
}

// TestDecoderReuse decodes all golden payloads, interleaved, with one Decoder
// and checks each result matches a fresh Decoder's: no state leaks between calls.
func TestDecoderReuse(t *testing.T) {
	paths := append(payloads(t, "valid"), payloads(t, "invalid")...)
	d := events.NewDecoder(events.DefaultConfig())
	for range 2 {
		for _, path := range paths {
			payload := readFile(t, path)
			wantView, wantRej, _ := decode(payload)
			var ev events.Event
			gotRej := rejectionOf(d.Decode(payload, recordTime, &ev))
			if viewOf(&ev) != wantView || gotRej != wantRej {
				t.Errorf("%s: reused decoder gave %+v %+v, fresh gave %+v %+v", path, viewOf(&ev), gotRej, wantView, wantRej)
			}
		}
	}
}
