package events_test

import (
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/usage-rollup/usage-rollup/internal/events"
	"github.com/usage-rollup/usage-rollup/internal/loadgen"
)

// benchPayloads are the valid golden payloads the decode benchmarks run on:
// snake is the reference event of docs/event-contract.md (Images API,
// snake_case), camel the same fields in camelCase, chat the chat-completions
// usage shape.
var benchPayloads = []string{"snake", "camel", "chat"}

// BenchmarkDecode measures the per-event path on valid payloads of each
// style. It must report 0 allocs/op: the consumer decodes every message.
func BenchmarkDecode(b *testing.B) {
	for _, name := range benchPayloads {
		payload := readFile(b, goldenDir+"/valid/"+name+".json")
		b.Run(name, func(b *testing.B) {
			d := events.NewDecoder(events.DefaultConfig())
			var ev events.Event
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				if err := d.Decode(payload, recordTime, &ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeMix decodes, in turn, the generated stream that
// BenchmarkDecodeAndAggregate (internal/aggregate) feeds: snake_case and
// camelCase, chat and responses usage, duplicates and 1% malformed messages.
// The style changes from one message to the next, which the single-style
// payloads of BenchmarkDecode do not exercise.
func BenchmarkDecodeMix(b *testing.B) {
	cfg := loadgen.DefaultConfig()
	cfg.Count, cfg.Start = 20_000, time.Now().Add(-2*time.Hour)
	var msgs [][]byte
	var size int64
	if _, err := loadgen.Generate(cfg, func(_, v []byte) error {
		msgs = append(msgs, append([]byte(nil), v...))
		size += int64(len(v))
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	d := events.NewDecoder(events.DefaultConfig())
	var ev events.Event
	rt := time.Now()
	b.ReportAllocs()
	b.SetBytes(size / int64(len(msgs)))
	i := 0
	for b.Loop() {
		_ = d.Decode(msgs[i], rt, &ev) // the malformed ones are rejected
		if i++; i == len(msgs) {
			i = 0
		}
	}
}

// BenchmarkDecodeEncodingJSON is the yardstick for BenchmarkDecode: the same
// payloads read by refDecode, a straightforward encoding/json decoder. Compare
// the two sub-benchmarks of one name from the same run.
func BenchmarkDecodeEncodingJSON(b *testing.B) {
	for _, name := range benchPayloads {
		payload := readFile(b, goldenDir+"/valid/"+name+".json")
		b.Run(name, func(b *testing.B) {
			var ref refEvent
			var ev events.Event
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				if err := refDecode(payload, recordTime, &ref, &ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDecodeDoesNotAllocate enforces the benchmark's 0 allocs/op in the
// ordinary test run, so a regression fails CI rather than a dashboard.
func TestDecodeDoesNotAllocate(t *testing.T) {
	for _, name := range []string{"snake", "camel", "chat", "epoch_ms", "mixed_same_values", "escapes", "inconsistent", "unknown_fields"} {
		payload := readFile(t, goldenDir+"/valid/"+name+".json")
		d := events.NewDecoder(events.DefaultConfig())
		var ev events.Event
		allocs := testing.AllocsPerRun(100, func() {
			if err := d.Decode(payload, recordTime, &ev); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocs per Decode, want 0", name, allocs)
		}
	}
}

// TestRefDecodeAgrees keeps the yardstick honest: on the benchmark payloads
// it must produce the event Decode produces, so both do the same work.
func TestRefDecodeAgrees(t *testing.T) {
	for _, name := range benchPayloads {
		payload := readFile(t, goldenDir+"/valid/"+name+".json")
		want, _, err := decode(payload)
		if err != nil {
			t.Fatalf("%s: Decode: %v", name, err)
		}
		var ref refEvent
		var ev events.Event
		if err := refDecode(payload, recordTime, &ref, &ev); err != nil {
			t.Fatalf("%s: refDecode: %v", name, err)
		}
		if got := viewOf(&ev); got != want {
			t.Errorf("%s: refDecode\n got %+v\nwant %+v", name, got, want)
		}
	}
}

// refEvent and refDecode are a REFERENCE decoder for the benchmarks, not a
// strict one: the straightforward way to read an event with encoding/json,
// into a struct, followed by the contract's checks that are cheap on the
// decoded struct: required and empty fields, lengths, UTF-8, counts at most
// MaxCount, status_code at most 999, conflicts between spellings, the
// timestamp's grammar, range and skew, the derived total and the
// inconsistency flag. Counts are read into unsigned integers, so encoding/json
// itself refuses -1, 40.0 and 1e3. It does not see what encoding/json hides:
// repeated keys (it keeps the last), null versus absent, nesting depth,
// unpaired surrogate escapes (repaired to U+FFFD), and it reports no reasons.
// Every spelling is its own field: encoding/json matches keys without regard
// to case, but workspace_id and workspaceId differ by more than case.
type refEvent struct {
	ID               string          `json:"id"`
	Timestamp        json.RawMessage `json:"timestamp"`
	WorkspaceID      string          `json:"workspace_id"`
	WorkspaceIDCamel string          `json:"workspaceId"`
	ProjectID        string          `json:"project_id"`
	ProjectIDCamel   string          `json:"projectId"`
	APIKeyID         string          `json:"api_key_id"`
	APIKeyIDCamel    string          `json:"apiKeyId"`
	Provider         string          `json:"provider"`
	Model            string          `json:"model"`
	Endpoint         string          `json:"endpoint"`
	StatusCode       uint64          `json:"status_code"`
	StatusCodeCamel  uint64          `json:"statusCode"`
	LatencyMs        uint64          `json:"latency_ms"`
	LatencyMsCamel   uint64          `json:"latencyMs"`
	Usage            refUsage        `json:"usage"`
}

type refUsage struct {
	InputTokens       uint64     `json:"input_tokens"`
	InputTokensCamel  uint64     `json:"inputTokens"`
	PromptTokens      uint64     `json:"prompt_tokens"`
	PromptTokensCamel uint64     `json:"promptTokens"`
	Details           refDetails `json:"input_tokens_details"`
	DetailsCamel      refDetails `json:"inputTokensDetails"`
	PromptDetails     refDetails `json:"prompt_tokens_details"`
	PromptDetailsCaml refDetails `json:"promptTokensDetails"`
	OutputTokens      uint64     `json:"output_tokens"`
	OutputTokensCamel uint64     `json:"outputTokens"`
	CompletionTokens  uint64     `json:"completion_tokens"`
	CompletionCamel   uint64     `json:"completionTokens"`
	TotalTokens       *uint64    `json:"total_tokens"` // nil: derive
	TotalTokensCamel  *uint64    `json:"totalTokens"`
}

type refDetails struct {
	TextTokens        uint64 `json:"text_tokens"`
	TextTokensCamel   uint64 `json:"textTokens"`
	ImageTokens       uint64 `json:"image_tokens"`
	ImageTokensCamel  uint64 `json:"imageTokens"`
	CachedTokens      uint64 `json:"cached_tokens"`
	CachedTokensCamel uint64 `json:"cachedTokens"`
}

var errRef = errors.New("refDecode: rejected")

// refDecode decodes payload with encoding/json into *r (reused) and fills ev.
func refDecode(payload []byte, recordTime time.Time, r *refEvent, ev *events.Event) error {
	*r = refEvent{}
	*ev = events.Event{}
	if len(payload) > events.DefaultConfig().MaxMessageBytes {
		return errRef
	}
	if err := json.Unmarshal(payload, r); err != nil {
		return err
	}
	ok := true
	str := func(required bool, spellings ...string) []byte {
		var v string
		for _, s := range spellings {
			if s != "" && v != "" && s != v {
				ok = false
			}
			if s != "" {
				v = s
			}
		}
		if (required && v == "") || len(v) > events.MaxFieldBytes || !utf8.ValidString(v) {
			ok = false
		}
		// Alias the string instead of copying it, as Decode aliases its
		// buffer, so that the yardstick pays only for encoding/json itself.
		return unsafe.Slice(unsafe.StringData(v), len(v))
	}
	count := func(spellings ...uint64) uint64 {
		var v uint64
		for _, n := range spellings {
			if n != 0 && v != 0 && n != v {
				ok = false
			}
			v = max(v, n)
		}
		if v > events.MaxCount {
			ok = false
		}
		return v
	}
	ev.ID = str(true, r.ID)
	ev.WorkspaceID = str(true, r.WorkspaceID, r.WorkspaceIDCamel)
	ev.ProjectID = str(false, r.ProjectID, r.ProjectIDCamel)
	ev.APIKeyID = str(false, r.APIKeyID, r.APIKeyIDCamel)
	ev.Provider = str(false, r.Provider)
	ev.Model = str(true, r.Model)
	ev.Endpoint = str(true, r.Endpoint)
	status := count(r.StatusCode, r.StatusCodeCamel)
	ev.StatusCode = int32(min(status, 1000))
	ev.LatencyMs = count(r.LatencyMs, r.LatencyMsCamel)

	u, d := &r.Usage, [...]*refDetails{&r.Usage.Details, &r.Usage.DetailsCamel, &r.Usage.PromptDetails, &r.Usage.PromptDetailsCaml}
	in := count(u.InputTokens, u.InputTokensCamel, u.PromptTokens, u.PromptTokensCamel)
	out := count(u.OutputTokens, u.OutputTokensCamel, u.CompletionTokens, u.CompletionCamel)
	var text, image, cached []uint64
	var buf [3][8]uint64
	text, image, cached = buf[0][:0], buf[1][:0], buf[2][:0]
	for _, x := range d {
		text = append(text, x.TextTokens, x.TextTokensCamel)
		image = append(image, x.ImageTokens, x.ImageTokensCamel)
		cached = append(cached, x.CachedTokens, x.CachedTokensCamel)
	}
	total, totalGiven := in+out, false
	for _, p := range []*uint64{u.TotalTokens, u.TotalTokensCamel} {
		if p != nil {
			if totalGiven && *p != total {
				ok = false
			}
			total, totalGiven = *p, true
		}
	}
	ev.Usage = events.Usage{InputTokens: in, InputTextTokens: count(text...), InputImageTokens: count(image...),
		InputCachedTokens: count(cached...), OutputTokens: out, TotalTokens: count(total)}
	ev.Inconsistent = ev.Usage.InputTextTokens+ev.Usage.InputImageTokens > in ||
		ev.Usage.InputCachedTokens > in || total != in+out

	ts := r.Timestamp
	var tm time.Time
	switch {
	case len(ts) > 2 && ts[0] == '"':
		t, err := time.Parse(time.RFC3339Nano, string(ts[1:len(ts)-1]))
		if err != nil {
			return err
		}
		tm = t
	case len(ts) > 0 && ts[0] != 'n':
		ms, err := strconv.ParseInt(string(ts), 10, 64)
		if err != nil {
			return err
		}
		tm = time.UnixMilli(ms)
	default:
		ok = false
	}
	if tm.Before(time.Unix(0, 0)) || !tm.Before(time.Unix(4_291_747_200, 0)) ||
		tm.After(recordTime.Add(events.DefaultConfig().MaxFutureSkew)) {
		ok = false
	}
	ev.TimeMs = tm.UnixMilli()
	if !ok || status > 999 {
		*ev = events.Event{}
		return errRef
	}
	return nil
}
