package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/usage-rollup/usage-rollup/internal/loadgen"
)

// Window says where one window size of a pipeline's results lives and how to
// read it. Each field is a complete query.
type Window struct {
	Name string // "1m", "1h"
	// Rows counts the rows physically stored (no FINAL).
	Rows string
	// Groups counts the distinct (window, dimensions) groups stored.
	Groups string
	// Sums returns sum(requests), sum(total_tokens) as analysts see them.
	Sums string
	// Analyst is the analyst query: per workspace and model, requests,
	// input, output and total tokens, ordered by workspace and model.
	Analyst string
}

// AnalystQuery is the analyst query over from, which names a table or view
// with the rollup columns (README.md, "Tables for analysts"), trimmed to the
// sums the exactness check compares.
func AnalystQuery(from string) string {
	return "SELECT workspace_id, model, sum(requests), sum(input_tokens), sum(output_tokens), sum(total_tokens)\n" +
		"FROM " + from + "\nGROUP BY workspace_id, model ORDER BY workspace_id, model"
}

// WindowResult is what Measure found for one window.
type WindowResult struct {
	Name                  string
	Rows, Groups          uint64
	Requests, TotalTokens uint64
	// Query is the median wall time of the analyst query.
	Query time.Duration
}

// Totals are the sums the analyst query returns per workspace and model.
type Totals struct {
	Requests, InputTokens, OutputTokens, TotalTokens uint64
}

// Measure reads the stored rows, groups and sums of every window, times the
// analyst query (median of runs), and checks each window against exp: its
// sums and every row of its analyst query. problems lists each mismatch.
func Measure(ctx context.Context, ch *ClickHouse, windows []Window, runs int, exp *loadgen.Expected) (
	res []WindowResult, problems []string, err error,
) {
	for _, w := range windows {
		r := WindowResult{Name: w.Name}
		if err := ch.Uints(ctx, w.Rows, &r.Rows); err != nil {
			return nil, nil, err
		}
		if err := ch.Uints(ctx, w.Groups, &r.Groups); err != nil {
			return nil, nil, err
		}
		if err := ch.Uints(ctx, w.Sums, &r.Requests, &r.TotalTokens); err != nil {
			return nil, nil, err
		}
		if r.Requests != exp.Overall.Requests || r.TotalTokens != exp.Overall.TotalTokens {
			problems = append(problems, fmt.Sprintf("%s: requests %d, total_tokens %d; want %d, %d",
				w.Name, r.Requests, r.TotalTokens, exp.Overall.Requests, exp.Overall.TotalTokens))
		}
		var got map[[2]string]Totals
		r.Query, got, err = timeAnalyst(ctx, ch, w.Analyst, runs)
		if err != nil {
			return nil, nil, err
		}
		problems = append(problems, compareAnalyst(w.Name, got, exp)...)
		res = append(res, r)
	}
	return res, problems, nil
}

// timeAnalyst runs query runs times and returns the median duration and the
// rows of the last run, keyed by (workspace, model).
func timeAnalyst(ctx context.Context, ch *ClickHouse, query string, runs int) (time.Duration, map[[2]string]Totals, error) {
	durations := make([]time.Duration, 0, runs)
	var got map[[2]string]Totals
	for range max(runs, 1) {
		start := time.Now()
		var err error
		if got, err = ch.analyst(ctx, query); err != nil {
			return 0, nil, err
		}
		durations = append(durations, time.Since(start))
	}
	slices.Sort(durations)
	return durations[len(durations)/2], got, nil
}

func (c *ClickHouse) analyst(ctx context.Context, query string) (map[[2]string]Totals, error) {
	out := map[[2]string]Totals{}
	err := c.eachRow(ctx, query, nil, func(rows driver.Rows) error {
		var ws, model string
		var t Totals
		if err := rows.Scan(&ws, &model, &t.Requests, &t.InputTokens, &t.OutputTokens, &t.TotalTokens); err != nil {
			return err
		}
		out[[2]string{ws, model}] = t
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// compareAnalyst lists the (workspace, model) rows that differ from exp.
func compareAnalyst(window string, got map[[2]string]Totals, exp *loadgen.Expected) []string {
	want := map[[2]string]Totals{}
	for _, r := range exp.Rows() {
		want[[2]string{r.Workspace, r.Model}] = Totals{r.Requests, r.InputTokens, r.OutputTokens, r.TotalTokens}
	}
	var problems []string
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			problems = append(problems, fmt.Sprintf("%s: %s/%s = %+v, want %+v", window, k[0], k[1], g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			problems = append(problems, fmt.Sprintf("%s: unexpected row %s/%s = %+v", window, k[0], k[1], g))
		}
	}
	slices.Sort(problems)
	return problems
}
