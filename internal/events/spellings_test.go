package events_test

import "strings"

// Object levels of the contract, keys of contractKeys.
const (
	levelTop     = ""
	levelUsage   = "usage"
	levelDetails = "usage.input_tokens_details"
)

// contractKeys maps every key the contract names, at each object level, to
// its snake_case name. It is copied from the field tables of
// docs/event-contract.md, not from the decoder, so tests that use it check
// the decoder against the document.
var contractKeys = map[string]map[string]string{
	levelTop: {
		"id": "id", "timestamp": "timestamp", "provider": "provider", "model": "model", "endpoint": "endpoint",
		"workspace_id": "workspace_id", "workspaceId": "workspace_id",
		"project_id": "project_id", "projectId": "project_id",
		"api_key_id": "api_key_id", "apiKeyId": "api_key_id",
		"status_code": "status_code", "statusCode": "status_code",
		"latency_ms": "latency_ms", "latencyMs": "latency_ms",
		"usage": "usage",
	},
	levelUsage: {
		"input_tokens": "input_tokens", "inputTokens": "input_tokens", "prompt_tokens": "input_tokens", "promptTokens": "input_tokens",
		"output_tokens": "output_tokens", "outputTokens": "output_tokens", "completion_tokens": "output_tokens", "completionTokens": "output_tokens",
		"total_tokens": "total_tokens", "totalTokens": "total_tokens",
		"input_tokens_details": "input_tokens_details", "inputTokensDetails": "input_tokens_details",
		"prompt_tokens_details": "input_tokens_details", "promptTokensDetails": "input_tokens_details",
	},
	levelDetails: {
		"text_tokens": "text_tokens", "textTokens": "text_tokens",
		"image_tokens": "image_tokens", "imageTokens": "image_tokens",
		"cached_tokens": "cached_tokens", "cachedTokens": "cached_tokens",
	},
}

// snakePath turns the keys leading to a value, as the message spelled them,
// into the snake_case path that RejectError.Field uses, e.g.
// ["usage", "promptTokensDetails", "cachedTokens"] into
// "usage.input_tokens_details.cached_tokens". Keys the contract does not
// name are kept as they are.
func snakePath(keys []string) string {
	level := levelTop
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if snake, ok := contractKeys[level][k]; ok {
			k = snake
		}
		out = append(out, k)
		level = strings.Join(out, ".")
	}
	return strings.Join(out, ".")
}
