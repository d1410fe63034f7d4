package events_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/usage-rollup/usage-rollup/internal/events"
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
// every key the decoder reads, at the level where the decoder reads it.
func TestSchemaListsEverySpelling(t *testing.T) {
	type props struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	var schema struct {
		props
		Defs map[string]props `json:"$defs"`
	}
	raw, err := os.ReadFile("../../schemas/event.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	levels := []struct {
		name string
		have map[string]json.RawMessage
		keys []string
	}{
		{"top level", schema.Properties, []string{"id", "timestamp", "workspace_id", "workspaceId", "project_id", "projectId",
			"api_key_id", "apiKeyId", "provider", "model", "endpoint", "status_code", "statusCode", "latency_ms", "latencyMs", "usage"}},
		{"usage", schema.Defs["usage"].Properties, []string{"input_tokens", "inputTokens", "prompt_tokens", "promptTokens",
			"output_tokens", "outputTokens", "completion_tokens", "completionTokens", "total_tokens", "totalTokens",
			"input_tokens_details", "inputTokensDetails", "prompt_tokens_details", "promptTokensDetails"}},
		{"input tokens details", schema.Defs["inputTokensDetails"].Properties, []string{"text_tokens", "textTokens",
			"image_tokens", "imageTokens", "cached_tokens", "cachedTokens"}},
	}
	for _, l := range levels {
		for _, k := range l.keys {
			if _, ok := l.have[k]; !ok {
				t.Errorf("schema %s lacks property %q", l.name, k)
			}
		}
	}
}
