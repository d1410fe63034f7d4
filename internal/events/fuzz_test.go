package events_test

import (
	"encoding/json"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/usage-rollup/usage-rollup/internal/events"
)

// FuzzDecode checks that Decode never panics and that every input is either
// accepted with an event satisfying the contract's invariants, or rejected
// with a *RejectError whose Reason is one of Reasons. An accepted event must
// equal the one an independent encoding/json reading of the payload expects
// (expectedView), pass the JSON Schema, and survive a round trip through the
// canonical snake_case encoding.
func FuzzDecode(f *testing.F) {
	for _, dir := range []string{"valid", "invalid"} {
		for _, path := range payloads(f, dir) {
			f.Add(readFile(f, path))
		}
	}
	f.Add([]byte(obj(req, `"usage":{"prompt_tokens":1,"promptTokensDetails":{"cachedTokens":2}}`)))
	f.Add([]byte(obj(ids, `"timestamp":1795774530123`)))

	d := events.NewDecoder(events.DefaultConfig())
	sch := compileEventSchema(f)
	f.Fuzz(func(t *testing.T, payload []byte) {
		var ev events.Event
		err := d.Decode(payload, recordTime, &ev)
		if err != nil {
			checkRejected(t, err, &ev)
			return
		}
		got := viewOf(&ev)
		checkInvariants(t, got)

		// An independent reading of the payload, with encoding/json and the
		// contract's rules, expects the same event, including Inconsistent.
		if want := expectedView(t, payload); got != want {
			t.Fatalf("Decode(%q)\n got %+v\nwant %+v (encoding/json reading)", payload, got, want)
		}
		// The schema is never stricter than the decoder. Repeated keys are
		// the exception: a validator sees one value per key.
		if r, _ := readReported(payload); !r.repeatedKey {
			if fails := validateWithSchema(t, sch, payload); len(fails) > 0 {
				t.Fatalf("schema rejects %q, which the decoder accepts: %+v", payload, fails)
			}
		}

		// The same input decodes the same way again: no state leaks.
		var again events.Event
		if err := d.Decode(payload, recordTime, &again); err != nil || viewOf(&again) != got {
			t.Fatalf("second Decode differs: %v %+v, first %+v", err, viewOf(&again), got)
		}
		// The canonical encoding of the event decodes to the same event.
		canon := canonical(t, got)
		var round events.Event
		if err := d.Decode(canon, recordTime, &round); err != nil || viewOf(&round) != got {
			t.Fatalf("round trip of %s: %v %+v, want %+v", canon, err, viewOf(&round), got)
		}
	})
}

func checkRejected(t *testing.T, err error, ev *events.Event) {
	t.Helper()
	re, ok := err.(*events.RejectError)
	if !ok {
		t.Fatalf("Decode returned %T %v, want *RejectError", err, err)
	}
	if !slices.Contains(events.Reasons, re.Reason) {
		t.Fatalf("unknown reason %q", re.Reason)
	}
	if viewOf(ev) != viewOf(&events.Event{}) {
		t.Fatalf("rejected Decode left a non-zero event")
	}
}

func checkInvariants(t *testing.T, v view) {
	t.Helper()
	for name, s := range map[string]string{"id": v.ID, "workspace_id": v.WorkspaceID, "model": v.Model, "endpoint": v.Endpoint} {
		if s == "" {
			t.Fatalf("required %s is empty", name)
		}
	}
	for _, s := range []string{v.ID, v.WorkspaceID, v.ProjectID, v.APIKeyID, v.Provider, v.Model, v.Endpoint} {
		if len(s) > events.MaxFieldBytes || !utf8.ValidString(s) {
			t.Fatalf("string %q is too long or not UTF-8", s)
		}
	}
	u := v.Usage
	for _, n := range []uint64{v.LatencyMs, u.InputTokens, u.InputTextTokens, u.InputImageTokens, u.InputCachedTokens, u.OutputTokens, u.TotalTokens} {
		if n > events.MaxCount {
			t.Fatalf("count %d exceeds MaxCount", n)
		}
	}
	if v.StatusCode < 0 || v.StatusCode > 999 {
		t.Fatalf("status_code %d", v.StatusCode)
	}
	if v.TimeMs < 0 || v.TimeMs > recordTime.Add(events.DefaultConfig().MaxFutureSkew).UnixMilli() {
		t.Fatalf("time_ms %d out of range", v.TimeMs)
	}
}

// canonical encodes v in the documented snake_case form, timestamp as epoch ms.
func canonical(t *testing.T, v view) []byte {
	t.Helper()
	type details struct {
		Text   uint64 `json:"text_tokens"`
		Image  uint64 `json:"image_tokens"`
		Cached uint64 `json:"cached_tokens"`
	}
	type usage struct {
		Input   uint64  `json:"input_tokens"`
		Details details `json:"input_tokens_details"`
		Output  uint64  `json:"output_tokens"`
		Total   uint64  `json:"total_tokens"`
	}
	u := v.Usage
	b, err := json.Marshal(struct {
		ID          string `json:"id"`
		Timestamp   int64  `json:"timestamp"`
		WorkspaceID string `json:"workspace_id"`
		ProjectID   string `json:"project_id"`
		APIKeyID    string `json:"api_key_id"`
		Provider    string `json:"provider"`
		Model       string `json:"model"`
		Endpoint    string `json:"endpoint"`
		StatusCode  int32  `json:"status_code"`
		LatencyMs   uint64 `json:"latency_ms"`
		Usage       usage  `json:"usage"`
	}{v.ID, v.TimeMs, v.WorkspaceID, v.ProjectID, v.APIKeyID, v.Provider, v.Model, v.Endpoint, v.StatusCode, v.LatencyMs,
		usage{u.InputTokens, details{u.InputTextTokens, u.InputImageTokens, u.InputCachedTokens}, u.OutputTokens, u.TotalTokens}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
