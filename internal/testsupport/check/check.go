// Package check compares rollups read back from ClickHouse with the ground
// truth of a generated stream. The demo prints it; the end-to-end tests
// assert on it.
package check

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
	"github.com/usage-rollup/usage-rollup/internal/audit"
	"github.com/usage-rollup/usage-rollup/internal/loadgen"
)

type key struct{ workspace, model string }

// Diff lists every workspace/model whose measures in got differ from want,
// one line each; nil means an exact match.
func Diff(want *loadgen.Expected, got []audit.GroupTotals) []string {
	gotBy := make(map[key]aggregate.Measures, len(got))
	for _, g := range got {
		gotBy[key{g.WorkspaceID, g.Model}] = g.Measures
	}
	var diffs []string
	for _, r := range want.Rows() {
		k := key{r.Workspace, r.Model}
		g, ok := gotBy[k]
		delete(gotBy, k)
		if w := fromTotals(r.Totals); !ok || !equal(w, g) {
			diffs = append(diffs, fmt.Sprintf("%s/%s: got %+v, want %+v", r.Workspace, r.Model, g, w))
		}
	}
	for k, g := range gotBy {
		diffs = append(diffs, fmt.Sprintf("%s/%s: unexpected group %+v", k.workspace, k.model, g))
	}
	return diffs
}

// fromTotals maps the generator's totals onto the rollup's measures.
func fromTotals(t loadgen.Totals) aggregate.Measures {
	return aggregate.Measures{
		Requests: t.Requests, Errors: t.Errors, InputTokens: t.InputTokens, InputTextTokens: t.InputTextTokens,
		InputImageTokens: t.InputImageTokens, InputCachedTokens: t.InputCachedTokens, OutputTokens: t.OutputTokens,
		TotalTokens: t.TotalTokens, LatencyMsSum: t.LatencyMsSum,
	}
}

// equal compares the measures the generator knows per group; it does not
// track latency max, inconsistent or late events per group (see Late).
func equal(want, got aggregate.Measures) bool {
	got.LatencyMsMax, got.InconsistentEvents, got.LateEvents = 0, 0, 0
	return want == got
}

// Late compares the late events counted over all groups with the late
// events the generator sent (each 1-3 hours behind the stream, far past any
// sensible ALLOWED_LATENESS); "" means they agree.
func Late(want *loadgen.Expected, got []audit.GroupTotals) string {
	var n uint64
	for _, g := range got {
		n += g.Measures.LateEvents
	}
	if n != uint64(want.Mix.Late) {
		return fmt.Sprintf("late_events = %d, want %d", n, want.Mix.Late)
	}
	return ""
}

// WriteTable prints got next to want, per workspace and model.
func WriteTable(w io.Writer, want *loadgen.Expected, got []audit.GroupTotals) error {
	gotBy := make(map[key]aggregate.Measures, len(got))
	for _, g := range got {
		gotBy[key{g.WorkspaceID, g.Model}] = g.Measures
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workspace\tmodel\trequests\t(expected)\tinput_tokens\t(expected)\toutput_tokens\t(expected)\ttotal_tokens\t(expected)\tmatch\t")
	for _, r := range want.Rows() {
		g := gotBy[key{r.Workspace, r.Model}]
		match := "ok"
		if !equal(fromTotals(r.Totals), g) {
			match = "MISMATCH"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", r.Workspace, r.Model,
			g.Requests, r.Requests, g.InputTokens, r.InputTokens, g.OutputTokens, r.OutputTokens,
			g.TotalTokens, r.TotalTokens, match)
	}
	return tw.Flush()
}
