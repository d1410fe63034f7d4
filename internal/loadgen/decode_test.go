package loadgen

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
)

// This file is an independent reading of the event contract, written against
// the JSON rather than the generator's structs, so the tests can recompute
// Expected from the bytes alone.

type decoded struct {
	id, workspace, model, endpoint string
	ts                             time.Time
	totals                         Totals
	camel, chat                    bool
}

// spellings lists every accepted name of a logical field; when several are
// present they must agree.
var (
	fWorkspace = []string{"workspace_id", "workspaceId"}
	fProject   = []string{"project_id", "projectId"}
	fAPIKey    = []string{"api_key_id", "apiKeyId"}
	fStatus    = []string{"status_code", "statusCode"}
	fLatency   = []string{"latency_ms", "latencyMs"}
	fInput     = []string{"input_tokens", "inputTokens", "prompt_tokens", "promptTokens"}
	fOutput    = []string{"output_tokens", "outputTokens", "completion_tokens", "completionTokens"}
	fTotal     = []string{"total_tokens", "totalTokens"}
	fDetails   = []string{"input_tokens_details", "inputTokensDetails", "prompt_tokens_details", "promptTokensDetails"}
	fText      = []string{"text_tokens", "textTokens"}
	fImage     = []string{"image_tokens", "imageTokens"}
	fCached    = []string{"cached_tokens", "cachedTokens"}
)

type object map[string]json.RawMessage

// lookup returns the value of a logical field, or a rejection reason.
func (o object) lookup(names []string) (json.RawMessage, MalformedKind) {
	var v json.RawMessage
	for _, n := range names {
		raw, ok := o[n]
		if !ok {
			continue
		}
		if v != nil && !bytes.Equal(v, raw) {
			return nil, MalformedConflictingFields
		}
		v = raw
	}
	return v, ""
}

func (o object) str(names []string, required bool) (string, MalformedKind) {
	raw, reason := o.lookup(names)
	if reason != "" {
		return "", reason
	}
	if raw == nil {
		if required {
			return "", MalformedMissingField
		}
		return "", ""
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", MalformedWrongType
	}
	return s, ""
}

func (o object) count(names []string) (uint64, bool, MalformedKind) {
	raw, reason := o.lookup(names)
	if reason != "" || raw == nil {
		return 0, false, reason
	}
	var n json.Number
	// json.Number also accepts a quoted number; the contract does not.
	if raw[0] == '"' || json.Unmarshal(raw, &n) != nil {
		return 0, false, MalformedWrongType
	}
	s := n.String()
	if s[0] == '-' {
		return 0, false, MalformedNegativeCount
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, MalformedNonInteger
	}
	return v, true, ""
}

func (o object) sub(names []string) (object, MalformedKind) {
	raw, reason := o.lookup(names)
	if reason != "" || raw == nil {
		return nil, reason
	}
	var sub object
	if json.Unmarshal(raw, &sub) != nil {
		return nil, MalformedWrongType
	}
	return sub, ""
}

// decodeEvent applies the contract to one message value.
func decodeEvent(value []byte) (decoded, MalformedKind) {
	var d decoded
	if !json.Valid(value) {
		return d, MalformedInvalidJSON
	}
	var o object
	if json.Unmarshal(value, &o) != nil || o == nil {
		return d, MalformedNotObject
	}
	_, d.camel = o["workspaceId"]
	var reason MalformedKind
	check := func(r MalformedKind) {
		if reason == "" {
			reason = r
		}
	}
	var r MalformedKind
	d.id, r = o.str([]string{"id"}, true)
	check(r)
	d.workspace, r = o.str(fWorkspace, true)
	check(r)
	for _, f := range [][]string{fProject, fAPIKey, {"provider"}} {
		_, r = o.str(f, true)
		check(r)
	}
	d.model, r = o.str([]string{"model"}, true)
	check(r)
	d.endpoint, r = o.str([]string{"endpoint"}, true)
	check(r)
	d.ts, r = timestamp(o["timestamp"])
	check(r)
	status, _, r := o.count(fStatus)
	check(r)
	latency, _, r := o.count(fLatency)
	check(r)
	u, r := o.sub([]string{"usage"})
	check(r)
	if u == nil {
		check(MalformedMissingField)
	}
	if reason != "" {
		return d, reason
	}
	_, d.chat = u["prompt_tokens"]
	if _, ok := u["promptTokens"]; ok {
		d.chat = true
	}
	t := Totals{Requests: 1, LatencyMsSum: latency}
	if status >= 400 {
		t.Errors = 1
	}
	t.InputTokens, _, r = u.count(fInput)
	check(r)
	t.OutputTokens, _, r = u.count(fOutput)
	check(r)
	total, hasTotal, r := u.count(fTotal)
	check(r)
	details, r := u.sub(fDetails)
	check(r)
	if details != nil {
		t.InputTextTokens, _, r = details.count(fText)
		check(r)
		t.InputImageTokens, _, r = details.count(fImage)
		check(r)
		t.InputCachedTokens, _, r = details.count(fCached)
		check(r)
	}
	t.TotalTokens = t.InputTokens + t.OutputTokens
	if hasTotal {
		t.TotalTokens = total
	}
	d.totals = t
	return d, reason
}

func timestamp(raw json.RawMessage) (time.Time, MalformedKind) {
	if raw == nil {
		return time.Time{}, MalformedMissingField
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, MalformedInvalidTimestamp
		}
		return ts.UTC(), ""
	}
	ms, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return time.Time{}, MalformedWrongType
	}
	return time.UnixMilli(ms).UTC(), ""
}
