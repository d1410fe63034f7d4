package loadgen

import (
	"strconv"
	"time"
)

// usage is a call's token accounting as the generator reports it.
type usage struct {
	input, text, image, cached, output, total uint64
}

// event is one generated usage event plus the choices that shape its JSON.
type event struct {
	id                 string
	ts                 time.Time // millisecond precision, UTC
	workspace, project string
	apiKey             string
	model              *model
	status             int
	latencyMs          uint64
	usage              usage
	late               bool
	camel, chat        bool // spelling and usage style
	epochMs            bool // timestamp as integer epoch ms instead of RFC3339
	tzOffset           int  // minutes east of UTC for an RFC3339 timestamp
	omitStatus         bool // success without status_code
	omitTotal          bool // usage without total_tokens
}

// totals is what the event contributes to the expected aggregates. Absent
// parts count as zero: chat-style usage carries no text/image split.
func (e *event) totals() Totals {
	t := Totals{
		Requests:          1,
		InputTokens:       e.usage.input,
		InputCachedTokens: e.usage.cached,
		OutputTokens:      e.usage.output,
		TotalTokens:       e.usage.total,
		LatencyMsSum:      e.latencyMs,
	}
	if !e.chat {
		t.InputTextTokens = e.usage.text
		t.InputImageTokens = e.usage.image
	}
	if e.status >= 400 {
		t.Errors = 1
	}
	return t
}

// names holds one spelling of every field name.
type names struct {
	workspace, project, apiKey, status, latency             string
	input, inputDetails, text, image, cached, output, total string
	chatInput, chatOutput, chatDetails                      string
}

var (
	snake = names{
		"workspace_id", "project_id", "api_key_id", "status_code", "latency_ms",
		"input_tokens", "input_tokens_details", "text_tokens", "image_tokens", "cached_tokens", "output_tokens", "total_tokens",
		"prompt_tokens", "completion_tokens", "prompt_tokens_details",
	}
	camel = names{
		"workspaceId", "projectId", "apiKeyId", "statusCode", "latencyMs",
		"inputTokens", "inputTokensDetails", "textTokens", "imageTokens", "cachedTokens", "outputTokens", "totalTokens",
		"promptTokens", "completionTokens", "promptTokensDetails",
	}
)

// encoder appends one event's JSON. A non-empty fault makes the output
// malformed in that one way (see MalformedKinds); everything else stays valid
// so each malformed message exercises exactly one rejection reason.
type encoder struct {
	b     []byte
	comma bool
	fault MalformedKind
	// variant picks among the ways to produce fault (which field is missing,
	// which one has the wrong type, ...).
	variant int
}

func (w *encoder) key(k string) {
	if w.comma {
		w.b = append(w.b, ',')
	}
	w.comma = true
	w.b = strconv.AppendQuote(w.b, k)
	w.b = append(w.b, ':')
}

func (w *encoder) str(k, v string) {
	w.key(k)
	w.b = strconv.AppendQuote(w.b, v)
}

func (w *encoder) uint(k string, v uint64) {
	w.key(k)
	w.b = strconv.AppendUint(w.b, v, 10)
}

// missing reports whether the fault drops required field i (0 id,
// 1 timestamp, 2 workspace id).
func (w *encoder) missing(i int) bool {
	return w.fault == MalformedMissingField && w.variant%3 == i
}

func (w *encoder) open(k string) {
	w.key(k)
	w.b = append(w.b, '{')
	w.comma = false
}

func (w *encoder) close() {
	w.b = append(w.b, '}')
	w.comma = true
}

// appendEvent encodes e. Field order is fixed so the bytes are deterministic.
func appendEvent(b []byte, e *event, fault MalformedKind, variant int) []byte {
	n := &snake
	if e.camel {
		n = &camel
	}
	w := encoder{b: b, fault: fault, variant: variant}
	if fault == MalformedNotObject {
		w.b = append(w.b, '[')
	}
	w.b = append(w.b, '{')
	if !w.missing(0) {
		w.str("id", e.id)
	}
	switch {
	case w.missing(1):
	case fault == MalformedInvalidTimestamp:
		w.str("timestamp", e.ts.Format("02/01/2006 15:04:05"))
	case e.epochMs:
		w.uint("timestamp", uint64(e.ts.UnixMilli()))
	default:
		ts := e.ts
		if e.tzOffset != 0 {
			ts = ts.In(time.FixedZone("", e.tzOffset*60))
		}
		w.str("timestamp", ts.Format("2006-01-02T15:04:05.000Z07:00"))
	}
	switch {
	case w.missing(2):
	case fault == MalformedWrongType && variant%2 == 0:
		w.key(n.workspace)
		w.b = append(w.b, "4711"...)
	case fault == MalformedConflictingFields && variant%2 == 0:
		w.str(snake.workspace, e.workspace)
		w.str(camel.workspace, e.workspace+"_other")
	default:
		w.str(n.workspace, e.workspace)
	}
	w.str(n.project, e.project)
	w.str(n.apiKey, e.apiKey)
	w.str("provider", e.model.provider)
	w.str("model", e.model.name)
	w.str("endpoint", e.model.endpoint)
	if !e.omitStatus {
		w.uint(n.status, uint64(e.status))
	}
	w.uint(n.latency, e.latencyMs)
	w.appendUsage(n, e)
	w.b = append(w.b, '}')
	if fault == MalformedNotObject {
		w.b = append(w.b, ']')
	}
	if fault == MalformedInvalidJSON {
		// Cut inside the usage object: an unterminated object is never valid JSON.
		w.b = w.b[:len(b)+(len(w.b)-len(b))*3/4]
	}
	return w.b
}

func (w *encoder) appendUsage(n *names, e *event) {
	u := &e.usage
	w.open("usage")
	if e.chat {
		w.uint(n.chatInput, u.input)
	} else {
		w.uint(n.input, u.input)
	}
	if w.fault == MalformedConflictingFields && w.variant%2 == 1 {
		// The other spelling of the same count, disagreeing. The generator
		// turns chat style off for this fault so the pair is unambiguous:
		// input_tokens versus inputTokens.
		other := &camel
		if e.camel {
			other = &snake
		}
		w.uint(other.input, u.input+7)
	}
	if e.chat {
		w.open(n.chatDetails)
		w.uint(n.cached, u.cached)
		w.close()
	} else {
		w.open(n.inputDetails)
		w.uint(n.text, u.text)
		w.uint(n.image, u.image)
		w.uint(n.cached, u.cached)
		w.close()
	}
	out := n.output
	if e.chat {
		out = n.chatOutput
	}
	switch w.fault {
	case MalformedNegativeCount:
		w.key(out)
		w.b = append(w.b, '-')
		w.b = strconv.AppendUint(w.b, u.output+1, 10)
	case MalformedNonInteger:
		w.key(out)
		w.b = strconv.AppendUint(w.b, u.output, 10)
		w.b = append(w.b, ".5"...)
	case MalformedWrongType:
		if w.variant%2 == 1 {
			w.str(out, strconv.FormatUint(u.output, 10))
			break
		}
		w.uint(out, u.output)
	default:
		w.uint(out, u.output)
	}
	if !e.omitTotal {
		w.uint(n.total, u.total)
	}
	w.close()
}
