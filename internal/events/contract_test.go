package events_test

import (
	"encoding/json"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/usage-rollup/usage-rollup/internal/events"
	"github.com/usage-rollup/usage-rollup/schemas"
)

// TestDocsListEveryReason keeps docs/event-contract.md's reason table in step
// with Reasons: each reason must have a row.
func TestDocsListEveryReason(t *testing.T) {
	doc, err := os.ReadFile("../../docs/event-contract.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range events.Reasons {
		if !strings.Contains(string(doc), "| `"+string(r)+"` |") {
			t.Errorf("docs/event-contract.md has no table row for reason %q", r)
		}
	}
}

// TestSchemaListsEverySpelling checks that schemas/event.schema.json declares
// every key the contract names (contractKeys), at the level where the
// contract names it, and no other.
func TestSchemaListsEverySpelling(t *testing.T) {
	type props struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	var schema struct {
		props
		Defs map[string]props `json:"$defs"`
	}
	if err := json.Unmarshal(schemas.EventSchema, &schema); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	levels := map[string]map[string]json.RawMessage{
		levelTop:     schema.Properties,
		levelUsage:   schema.Defs["usage"].Properties,
		levelDetails: schema.Defs["inputTokensDetails"].Properties,
	}
	for level, have := range levels {
		for k := range contractKeys[level] {
			if _, ok := have[k]; !ok {
				t.Errorf("schema level %q lacks property %q", level, k)
			}
		}
		for k := range have {
			if _, ok := contractKeys[level][k]; !ok {
				t.Errorf("schema level %q declares %q, which docs/event-contract.md does not name", level, k)
			}
		}
	}
}

// TestDocsListDecoderOnly keeps the section "What the JSON Schema cannot
// check" of docs/event-contract.md in step with decoderOnly: every payload
// listed there is named in the section's table (a * matches many), and every
// payload the table names is listed there.
func TestDocsListDecoderOnly(t *testing.T) {
	doc := string(readFile(t, "../../docs/event-contract.md"))
	_, section, ok := strings.Cut(doc, "\n## What the JSON Schema cannot check\n")
	if !ok {
		t.Fatal("docs/event-contract.md has no section \"What the JSON Schema cannot check\"")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var named []string // backquoted .json names in the table, as patterns
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		for i, part := range strings.Split(line, "`") {
			if i%2 == 1 && strings.HasSuffix(part, ".json") {
				named = append(named, path.Base(part))
			}
		}
	}
	matches := func(pattern, name string) bool {
		ok, err := path.Match(pattern, name)
		return err == nil && ok
	}
	for name := range decoderOnly {
		if !slices.ContainsFunc(named, func(p string) bool { return matches(p, name) }) {
			t.Errorf("docs do not name decoder-only payload %s", name)
		}
	}
	for _, p := range named {
		if !slices.ContainsFunc(slices.Collect(maps.Keys(decoderOnly)), func(name string) bool { return matches(p, name) }) {
			t.Errorf("docs name %s as decoder only, but decoderOnly has no such payload", p)
		}
	}
}
