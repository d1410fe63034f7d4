package events_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/usage-rollup/usage-rollup/internal/events"
	"github.com/usage-rollup/usage-rollup/schemas"
)

// notJSON stands for "the validator's JSON parser refuses the text", which
// happens before any schema keyword is evaluated.
const notJSON = "(not JSON)"

// schemaKeywords maps each rejection reason to the schema keywords that
// express it: a payload the decoder rejects for that reason must fail one of
// them at the rejected field, in whatever spelling the payload used. A reason
// mapped to nil cannot be expressed in JSON Schema at all.
var schemaKeywords = map[events.Reason][]string{
	// A validator sees a parsed value, never the size of the text.
	events.ReasonOversized:   nil,
	events.ReasonInvalidJSON: {notJSON},
	events.ReasonNotObject:   {"type"},
	// Absent: required. null: type, since the schema's required fields do not
	// admit null (workspace_id fails inside the anyOf over its two spellings).
	events.ReasonMissingField:  {"required", "type"},
	events.ReasonWrongType:     {"type"}, // status_code above 999: see statusTooLarge
	events.ReasonEmptyField:    {"minLength"},
	events.ReasonFieldTooLong:  {"maxLength"},
	events.ReasonNegativeCount: {"minimum"},
	events.ReasonNonInteger:    {"type"},
	events.ReasonCountTooLarge: {"maximum"},
	// JSON Schema cannot compare two values of one instance.
	events.ReasonConflictingField: nil,
	// The string patterns and format, or the epoch-milliseconds type and range.
	events.ReasonInvalidTimestamp: {"pattern", "format", "type", "minimum", "maximum"},
	// The reference is the Kafka record time, which is not in the message.
	events.ReasonFutureTimestamp: nil,
}

// statusTooLarge is the one wrong_type that is about a value, not a type: a
// status_code above 999, which the schema states as a maximum.
var statusTooLarge = rejection{events.ReasonWrongType, "status_code"}

// Why a rule is checked by the decoder only; see docs/event-contract.md,
// "What the JSON Schema cannot check".
const (
	whyConflict = "equal values across spellings and repeated keys: JSON Schema cannot compare two values, " +
		"and a parser keeps one value per key (Go's encoding/json the last) before a validator runs"
	whyDerived    = "the derived total_tokens bound needs input_tokens + output_tokens: JSON Schema has no arithmetic"
	whyFuture     = "the skew is measured against the Kafka record time, which is not part of the message"
	whyNumberText = "the number's text has a fraction, exponent or minus sign, but its value is a non-negative " +
		"integer, and JSON Schema sees values: 40.0, 1e3 and -0 pass \"integer\" and \"minimum\": 0"
	whyParserRepairs = "the parser hands the validator a repaired string (Go's encoding/json turns invalid UTF-8 " +
		"and unpaired surrogate escapes into U+FFFD), so the schema never sees the fault"
	whyDepth = "the decoder's nesting limit (300) is its parser's; Go's encoding/json allows 10000, and JSON " +
		"Schema cannot bound the depth of unknown fields it does not describe"
	whyBytes       = "maxLength counts characters; the decoder's 256 is UTF-8 bytes, stricter for non-ASCII text"
	whyBoundaryDay = "on the first and last day of the range the offset decides whether the instant is in it; " +
		"the pattern checks the local date only"
)

// decoderOnly lists every invalid golden payload the schema cannot reject, and
// why. TestSchemaInvalidGoldens requires the schema to accept each of them, so
// the list cannot rot: an entry the schema comes to reject, or a payload that
// disappears, fails the test, and so does a new payload the schema accepts.
var decoderOnly = map[string]string{
	"conflicting_chat.json":                     whyConflict,
	"conflicting_details.json":                  whyConflict,
	"conflicting_duplicate_key.json":            whyConflict,
	"conflicting_optional_empty.json":           whyConflict,
	"conflicting_spellings.json":                whyConflict,
	"count_too_large_derived.json":              whyDerived,
	"field_too_long_bytes.json":                 whyBytes,
	"future_timestamp.json":                     whyFuture,
	"invalid_json_lone_surrogate.json":          whyParserRepairs,
	"invalid_json_too_deep.json":                whyDepth,
	"invalid_timestamp_before_1970_offset.json": whyBoundaryDay,
	"invalid_timestamp_epoch_integral.json":     whyNumberText,
	"negative_zero.json":                        whyNumberText,
	"non_integer_exponent.json":                 whyNumberText,
	"non_integer_fraction.json":                 whyNumberText,
	"wrong_type_invalid_utf8.json":              whyParserRepairs,
}

// schemaFailure is one leaf of a validation error: the keyword that failed
// and the snake_case path of the value it failed on.
type schemaFailure struct {
	keyword string
	field   string
}

// compileEventSchema compiles schemas/event.schema.json. Format assertion is
// on: the schema relies on format date-time for calendar dates, and says so.
func compileEventSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemas.EventSchema))
	if err != nil {
		t.Fatalf("event.schema.json: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("event.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("event.schema.json")
	if err != nil {
		t.Fatalf("compile event.schema.json: %v", err)
	}
	return sch
}

// validateWithSchema returns the leaf failures of validating payload, none if
// the schema accepts it, or the single failure notJSON if the validator's
// parser refuses the text.
func validateWithSchema(t testing.TB, sch *jsonschema.Schema, payload []byte) []schemaFailure {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return []schemaFailure{{keyword: notJSON}}
	}
	err = sch.Validate(inst)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate: %v", err)
	}
	var out []schemaFailure
	collectLeaves(ve, &out)
	return out
}

// collectLeaves appends the errors of ve that have no causes. A required
// error is reported on the object; it is placed on each missing property.
func collectLeaves(ve *jsonschema.ValidationError, out *[]schemaFailure) {
	for _, c := range ve.Causes {
		collectLeaves(c, out)
	}
	if len(ve.Causes) > 0 {
		return
	}
	keywords := ve.ErrorKind.KeywordPath()
	keyword := strings.Join(keywords, "/")
	if req, ok := ve.ErrorKind.(*kind.Required); ok {
		for _, m := range req.Missing {
			*out = append(*out, schemaFailure{keyword, snakePath(append(slices.Clone(ve.InstanceLocation), m))})
		}
		return
	}
	*out = append(*out, schemaFailure{keyword, snakePath(ve.InstanceLocation)})
}

// TestSchemaAcceptsValidGoldens: every payload the decoder accepts in
// testdata/events/valid passes the schema.
func TestSchemaAcceptsValidGoldens(t *testing.T) {
	sch := compileEventSchema(t)
	for _, path := range payloads(t, "valid") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			if fails := validateWithSchema(t, sch, readFile(t, path)); len(fails) > 0 {
				t.Errorf("schema rejects a valid payload: %+v", fails)
			}
		})
	}
}

// TestSchemaInvalidGoldens: every payload in testdata/events/invalid fails the
// schema for the reason in its .golden.json (a keyword of schemaKeywords, at
// the golden's field and nowhere else), unless decoderOnly lists it, in which
// case the schema must accept it.
func TestSchemaInvalidGoldens(t *testing.T) {
	sch := compileEventSchema(t)
	seen := map[string]bool{}
	checked := map[events.Reason]int{} // schema-checked payloads per reason
	for _, path := range payloads(t, "invalid") {
		name := filepath.Base(path)
		seen[name] = true
		var want rejection
		if err := json.Unmarshal(readFile(t, strings.TrimSuffix(path, ".json")+".golden.json"), &want); err != nil {
			t.Fatalf("%s: golden: %v", name, err)
		}
		t.Run(name, func(t *testing.T) {
			fails := validateWithSchema(t, sch, readFile(t, path))
			if why, ok := decoderOnly[name]; ok {
				if len(fails) > 0 {
					t.Errorf("listed as decoder only (%s), but the schema rejects it: %+v", why, fails)
				}
				return
			}
			checked[want.Reason]++
			checkSchemaReason(t, fails, want)
		})
	}
	for name := range decoderOnly {
		if !seen[name] {
			t.Errorf("decoderOnly lists %s, which is not in %s/invalid", name, goldenDir)
		}
	}
	// Every reason has an entry, and every reason the schema can express has
	// a golden payload that shows the schema rejecting it.
	for _, r := range events.Reasons {
		keywords, ok := schemaKeywords[r]
		switch {
		case !ok:
			t.Errorf("schemaKeywords has no entry for reason %q", r)
		case len(keywords) > 0 && checked[r] == 0:
			t.Errorf("no invalid golden payload shows the schema rejecting %q", r)
		}
	}
}

// checkSchemaReason fails t unless fails, the schema's verdict on a payload
// the decoder rejects with want, expresses the same rule at the same field.
func checkSchemaReason(t *testing.T, fails []schemaFailure, want rejection) {
	t.Helper()
	keywords := schemaKeywords[want.Reason]
	if want == statusTooLarge {
		keywords = []string{"maximum"}
	}
	if len(keywords) == 0 {
		t.Fatalf("%s is decoder only: list the payload in decoderOnly", want.Reason)
	}
	if len(fails) == 0 {
		t.Fatalf("the schema accepts a payload the decoder rejects with %+v: fix the schema, or list the payload in decoderOnly", want)
	}
	matched := false
	for _, f := range fails {
		if f.field != want.Field {
			t.Errorf("schema fails %s at %q; want failures at %q only", f.keyword, f.field, want.Field)
		}
		matched = matched || slices.Contains(keywords, f.keyword)
	}
	if !matched {
		t.Errorf("schema fails with %+v; want one of %q at %q for %s", fails, keywords, want.Field, want.Reason)
	}
}

// TestSchemaCannotCheckSize: oversized has no golden payload (it would be a
// 1 MiB file), so it is built here. The schema accepts it; only the decoder
// bounds the message size.
func TestSchemaCannotCheckSize(t *testing.T) {
	payload := []byte(obj(req, `"pad":"`+strings.Repeat("x", events.DefaultConfig().MaxMessageBytes)+`"`))
	if _, rej, _ := decode(payload); rej.Reason != events.ReasonOversized {
		t.Fatalf("decoder: %+v, want %s", rej, events.ReasonOversized)
	}
	if fails := validateWithSchema(t, compileEventSchema(t), payload); len(fails) > 0 {
		t.Errorf("schema rejects an oversized but otherwise valid payload: %+v", fails)
	}
}
