-- cost: what each workspace spent per model in a period, in US dollars at
-- the prices in effect when the usage happened (usage_prices; see
-- docs/analysts.md, "Cost").
--
-- Costs are exact Decimal(38, 15) dollars; round for display only. Usage with
-- no price in effect is not dropped: unpriced_requests and unpriced_tokens
-- show it, and its cost is 0. Reads usage_cost_1h, so the period should be
-- hour-aligned (as should every effective_from).
--
-- Parameters (positional, bound by clickhouse-go in this order):
--   1. from  String 'YYYY-MM-DD hh:mm:ss' UTC, inclusive
--   2. to    String 'YYYY-MM-DD hh:mm:ss' UTC, exclusive
SELECT
    workspace_id,
    provider,
    model,
    sum(requests) AS requests,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(input_cost) AS input_cost,
    sum(cached_input_cost) AS cached_input_cost,
    sum(image_input_cost) AS image_input_cost,
    sum(output_cost) AS output_cost,
    sum(per_image_cost) AS per_image_cost,
    sum(cost) AS cost,
    sum(unpriced_requests) AS unpriced_requests,
    sum(unpriced_tokens) AS unpriced_tokens
FROM
(
    -- The unpriced parts are picked per row here: in the outer query the
    -- names requests and total_tokens would already mean their sums.
    SELECT
        *,
        if(priced, 0, requests) AS unpriced_requests,
        if(priced, 0, total_tokens) AS unpriced_tokens
    FROM usage_cost_1h
    WHERE window_start >= toDateTime(?, 'UTC')
      AND window_start < toDateTime(?, 'UTC')
)
GROUP BY workspace_id, provider, model
ORDER BY workspace_id, provider, model;
