package schema

import (
	"fmt"
	"testing"
)

// priceRow is one usage_prices row; prices are exact decimal strings in
// dollars (per million tokens, per_image per successful request).
type priceRow struct {
	provider, model, from                  string
	input, cached, image, output, perImage string
	updatedAt                              string
}

// insertPrices returns one INSERT per row, so that a correction lands in its
// own part and FINAL, not a merge, has to pick it. (INSERT ... SELECT, as in
// insertUsage.)
func insertPrices(rows ...priceRow) []string {
	out := make([]string, 0, len(rows))
	for _, p := range rows {
		out = append(out, fmt.Sprintf("INSERT INTO usage_prices (provider, model, effective_from, input_per_mtok, "+
			"cached_input_per_mtok, image_token_per_mtok, output_per_mtok, per_image, note, updated_at) "+
			"SELECT '%s', '%s', toDateTime('%s', 'UTC'), toDecimal64('%s', 9), toDecimal64('%s', 9), "+
			"toDecimal64('%s', 9), toDecimal64('%s', 9), toDecimal64('%s', 9), 'test', toDateTime('%s', 'UTC')",
			p.provider, p.model, p.from, p.input, p.cached, p.image, p.output, p.perImage, p.updatedAt))
	}
	return out
}

// priceSeed has two periods for gpt-image-1 and flux-pro, changing at
// 2024-05-02 12:00, inside usageSeed. The second gpt-image-1 row was first
// entered with output 30 and corrected to 32 (same key, later updated_at).
// A June price must not touch May. acme/unpriced-model has no price.
var priceSeed = []priceRow{
	{"openai", "gpt-image-1", "2024-05-01 00:00:00", "5", "1.25", "10", "40", "0", "2024-04-20 00:00:00"},
	{"openai", "gpt-image-1", "2024-05-02 12:00:00", "4", "1", "8", "30", "0", "2024-04-25 00:00:00"},
	{"openai", "gpt-image-1", "2024-05-02 12:00:00", "4", "1", "8", "32", "0", "2024-04-26 00:00:00"},
	{"openai", "gpt-image-1", "2024-06-01 00:00:00", "1", "1", "1", "1", "0", "2024-05-20 00:00:00"},
	{"openai", "gpt-4o-mini", "2024-05-01 00:00:00", "0.15", "0.075", "0", "0.6", "0", "2024-04-20 00:00:00"},
	{"bfl", "flux-pro", "2024-05-01 00:00:00", "0", "0", "0", "0", "0.05", "2024-04-20 00:00:00"},
	{"bfl", "flux-pro", "2024-05-02 12:00:00", "0", "0", "0", "0", "0.04", "2024-04-20 00:00:00"},
}

// TestCostViews checks usage_cost_1h and usage_cost_1m against costs worked
// out by hand, on the 18.16 server and on chDB.
//
// gpt-image-1 (uncached text input = input - image - cached tokens):
//
//	first price (5 / 1.25 / 10 / 40 per Mtok), rows 05-01 12:05, 05-02 11:05, 05-02 11:30:
//	  input  (1000-400-0 + 500-200-100 + 50-10-0) = 840 x 5    = 0.0042
//	  cached 100 x 1.25                                        = 0.000125
//	  image  (400 + 200 + 10) = 610 x 10                       = 0.0061
//	  output (16640 + 8320 + 0) = 24960 x 40                   = 0.9984
//	  total                                                    = 1.008825, 7 requests
//	second price (4 / 1 / 8 / 32, corrected from 30), row 05-02 12:05 (later rows have no tokens):
//	  input 900-400-200 = 300 x 4 = 0.0012, cached 200 x 1 = 0.0002,
//	  image 400 x 8 = 0.0032, output 12480 x 32 = 0.39936    = 0.40396, 67 requests
//
// flux-pro per successful request: 5 x 0.05 + (8 + 10 + 8) x 0.04 = 1.29.
// The row before the first price (04-30 23:30) and acme/unpriced-model cost
// 0 with priced = 0 and stay in the totals.
func TestCostViews(t *testing.T) {
	early := usageRow{"2024-04-30 23:30", "ws_acme", "key_a1", "openai", "gpt-image-1", "images.generations", 0, 0, 90, 2, 0, 300, 300, 0, 0, 100, 1000, 600}
	earlyHour := early
	earlyHour.minute = "2024-04-30 23:00"
	setup := append(querySetup(), insertUsage("usage_rollup_1m", early), insertUsage("usage_rollup_1h", earlyHour))

	periods := func(window string) string {
		return "SELECT price_effective_from, priced, sum(requests), sum(input_cost), sum(cached_input_cost), " +
			"sum(image_input_cost), sum(output_cost), sum(per_image_cost), sum(cost) FROM usage_cost_" + window +
			" WHERE model = 'gpt-image-1' GROUP BY price_effective_from, priced ORDER BY price_effective_from"
	}
	gptImage := []string{
		"1970-01-01 00:00:00 | 0 | 2 | 0 | 0 | 0 | 0 | 0 | 0",
		"2024-05-01 00:00:00 | 1 | 7 | 0.0042 | 0.000125 | 0.0061 | 0.9984 | 0 | 1.008825",
		"2024-05-02 12:00:00 | 1 | 67 | 0.0012 | 0.0002 | 0.0032 | 0.39936 | 0 | 0.40396",
	}
	totals := func(window string) string {
		return "SELECT sum(requests), sumIf(requests, priced = 0), sum(total_tokens), sum(cost), " +
			"(SELECT sum(requests) FROM usage_" + window + ") FROM usage_cost_" + window
	}
	// 138 requests: usageSeed's 136 and the early row; 2 + 7 unpriced.
	const wantTotals = "138 | 9 | 56810 | 2.7059476 | 138"
	cases := []sqlCase{
		{name: "gpt-image-1 per price period, 1h", query: periods("1h"), want: gptImage},
		{name: "gpt-image-1 per price period, 1m", query: periods("1m"), want: gptImage},
		{name: "flux-pro per image", query: "SELECT sum(per_image_cost), sum(cost) FROM usage_cost_1h WHERE model = 'flux-pro'",
			want: []string{"1.29 | 1.29"}},
		{name: "unpriced model", query: "SELECT priced, sum(requests), sum(cost) FROM usage_cost_1h " +
			"WHERE model = 'unpriced-model' GROUP BY priced", want: []string{"0 | 7 | 0"}},
		{name: "totals, 1h", query: totals("1h"), want: []string{wantTotals}},
		{name: "totals, 1m", query: totals("1m"), want: []string{wantTotals}},
		// A price added later starts later: history keeps its cost.
		{name: "new price leaves history alone", query: periods("1h"), want: gptImage, setup: insertPrices(
			priceRow{"openai", "gpt-image-1", "2024-05-03 00:00:00", "3", "1", "6", "20", "0", "2024-05-03 00:00:00"})},
	}
	runScenario(t, setup, cases, nil)
}
