package loadgen

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Totals are the sums a consumer keeps per group. Counts absent from an event
// add zero; TotalTokens defaults to input + output when the event omits it.
type Totals struct {
	Requests          uint64 `json:"requests"`
	Errors            uint64 `json:"errors"`
	InputTokens       uint64 `json:"input_tokens"`
	InputTextTokens   uint64 `json:"input_text_tokens"`
	InputImageTokens  uint64 `json:"input_image_tokens"`
	InputCachedTokens uint64 `json:"input_cached_tokens"`
	OutputTokens      uint64 `json:"output_tokens"`
	TotalTokens       uint64 `json:"total_tokens"`
	LatencyMsSum      uint64 `json:"latency_ms_sum"`
}

// Add adds o to t.
func (t *Totals) Add(o Totals) {
	t.Requests += o.Requests
	t.Errors += o.Errors
	t.InputTokens += o.InputTokens
	t.InputTextTokens += o.InputTextTokens
	t.InputImageTokens += o.InputImageTokens
	t.InputCachedTokens += o.InputCachedTokens
	t.OutputTokens += o.OutputTokens
	t.TotalTokens += o.TotalTokens
	t.LatencyMsSum += o.LatencyMsSum
}

// Mix counts how the accepted events were shaped, for checking that a consumer
// saw every variant and that the ratios were honored.
type Mix struct {
	Late          int `json:"late"`            // timestamp 1-3h behind the stream
	Camel         int `json:"camel"`           // camelCase field names
	ChatStyle     int `json:"chat_style"`      // prompt_tokens/completion_tokens usage
	EpochMs       int `json:"epoch_ms"`        // integer epoch-millisecond timestamp
	NoStatus      int `json:"no_status"`       // status_code absent (success)
	NoTotalTokens int `json:"no_total_tokens"` // total_tokens absent
}

// Expected is what a correct consumer must derive from a generated stream.
// Totals count each distinct accepted event once, however often it was sent.
type Expected struct {
	Seed       int64 `json:"seed"`
	Sent       int   `json:"sent"`       // messages emitted, duplicates and malformed included
	Accepted   int   `json:"accepted"`   // distinct valid events
	Duplicates int   `json:"duplicates"` // re-sent copies of valid events
	Malformed  int   `json:"malformed"`  // messages a consumer must reject
	// MalformedByKind splits Malformed by the rejection reason to expect.
	MalformedByKind map[MalformedKind]int `json:"malformed_by_kind"`
	Mix             Mix                   `json:"mix"`
	// MinEventTime and MaxEventTime bound the accepted events' timestamps.
	MinEventTime time.Time `json:"min_event_time"`
	MaxEventTime time.Time `json:"max_event_time"`
	// ByWorkspaceModel holds the totals per workspace id, then per model.
	ByWorkspaceModel map[string]map[string]Totals `json:"by_workspace_model"`
	Overall          Totals                       `json:"overall"`
}

func newExpected(seed int64) Expected {
	return Expected{
		Seed:             seed,
		MalformedByKind:  map[MalformedKind]int{},
		ByWorkspaceModel: map[string]map[string]Totals{},
	}
}

// add records a valid event sent for the first time.
func (x *Expected) add(e *event) {
	x.Accepted++
	t := e.totals()
	x.Overall.Add(t)
	byModel := x.ByWorkspaceModel[e.workspace]
	if byModel == nil {
		byModel = map[string]Totals{}
		x.ByWorkspaceModel[e.workspace] = byModel
	}
	sum := byModel[e.model.name]
	sum.Add(t)
	byModel[e.model.name] = sum

	if x.MinEventTime.IsZero() || e.ts.Before(x.MinEventTime) {
		x.MinEventTime = e.ts
	}
	if e.ts.After(x.MaxEventTime) {
		x.MaxEventTime = e.ts
	}
	count := func(n *int, cond bool) {
		if cond {
			*n++
		}
	}
	count(&x.Mix.Late, e.late)
	count(&x.Mix.Camel, e.camel)
	count(&x.Mix.ChatStyle, e.chat)
	count(&x.Mix.EpochMs, e.epochMs)
	count(&x.Mix.NoStatus, e.omitStatus)
	count(&x.Mix.NoTotalTokens, e.omitTotal)
}

// Row is one line of the expected-totals table.
type Row struct {
	Workspace, Model string
	Totals
}

// Rows returns ByWorkspaceModel flattened and sorted by workspace, then model.
func (x *Expected) Rows() []Row {
	var rows []Row
	for ws, byModel := range x.ByWorkspaceModel {
		for m, t := range byModel {
			rows = append(rows, Row{ws, m, t})
		}
	}
	slices.SortFunc(rows, func(a, b Row) int {
		return cmp.Or(strings.Compare(a.Workspace, b.Workspace), strings.Compare(a.Model, b.Model))
	})
	return rows
}

// WriteTable prints the per-workspace/model totals and the message counts.
func (x *Expected) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workspace\tmodel\trequests\terrors\tinput\ttext\timage\tcached\toutput\ttotal\tavg_latency_ms\t")
	line := func(ws, model string, t Totals) {
		avg := uint64(0)
		if t.Requests > 0 {
			avg = t.LatencyMsSum / t.Requests
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", ws, model, t.Requests, t.Errors,
			t.InputTokens, t.InputTextTokens, t.InputImageTokens, t.InputCachedTokens, t.OutputTokens, t.TotalTokens, avg)
	}
	for _, r := range x.Rows() {
		line(r.Workspace, r.Model, r.Totals)
	}
	line("ALL", "", x.Overall)
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "sent %d, accepted %d, duplicates %d, malformed %d %v\nevent time %s .. %s, late %d\n",
		x.Sent, x.Accepted, x.Duplicates, x.Malformed, x.MalformedByKind,
		x.MinEventTime.Format(time.RFC3339Nano), x.MaxEventTime.Format(time.RFC3339Nano), x.Mix.Late)
	return err
}
