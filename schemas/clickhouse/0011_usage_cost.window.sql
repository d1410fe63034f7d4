-- usage_cost_{{window}} is usage_{{window}} priced at query time: each row
-- (one group's chunk segment, as in usage_{{window}}; aggregate with sum()) is
-- multiplied by the usage_prices row in effect at its window_start, i.e. the
-- latest effective_from <= window_start for its provider and model. Rows with
-- no price in effect have priced = 0 and cost 0; they are kept, not dropped,
-- so usage totals over this view equal those over usage_{{window}}.
--
-- How the price is found, valid on ClickHouse 18.16 (no ASOF JOIN, no window
-- functions, JOIN ON equality only) and on current releases: the subquery
-- folds each (provider, model)'s prices into one array of
-- (effective_from, prices...) tuples sorted by effective_from, and an
-- ANY LEFT JOIN on (provider, model) attaches that array to every usage row
-- (the right side has one row per key, so no row is duplicated). The number of
-- periods with effective_from <= window_start is then the 1-based index of the
-- price in effect; index 0 (before the first price, or no price at all)
-- selects the all-zero default tuple.
--
-- Cost parts are exact: tokens / 1e6 at scale 6 is exact, times a
-- Decimal(18, 9) price gives Decimal(38, 15) dollars, which sum() keeps exact.
-- The split is linear (uncached text input = input - image - cached), so the
-- cost of a sum of rows is the sum of their costs, however rows are chunked.
CREATE VIEW IF NOT EXISTS {{database}}.usage_cost_{{window}} AS
SELECT
    window_start,
    workspace_id,
    project_id,
    api_key_id,
    provider,
    model,
    endpoint,
    requests,
    errors,
    input_tokens,
    input_text_tokens,
    input_image_tokens,
    input_cached_tokens,
    output_tokens,
    total_tokens,
    price_index > 0 AS priced,
    tupleElement(price, 1) AS price_effective_from,
    toDecimal128(toInt64(input_tokens) - toInt64(input_image_tokens) - toInt64(input_cached_tokens), 6) / 1000000
        * tupleElement(price, 2) AS input_cost,
    toDecimal128(input_cached_tokens, 6) / 1000000 * tupleElement(price, 3) AS cached_input_cost,
    toDecimal128(input_image_tokens, 6) / 1000000 * tupleElement(price, 4) AS image_input_cost,
    toDecimal128(output_tokens, 6) / 1000000 * tupleElement(price, 5) AS output_cost,
    toDecimal128(toInt64(requests) - toInt64(errors), 6) * tupleElement(price, 6) AS per_image_cost,
    input_cost + cached_input_cost + image_input_cost + output_cost + per_image_cost AS cost,
    topic,
    `partition`,
    chunk,
    segment
FROM
(
    SELECT
        *,
        -- window_start is passed in as an array, not captured by the lambda:
        -- 18.16 does not read columns that only a lambda refers to from a
        -- subquery or JOIN ("Unknown identifier: window_start").
        arrayCount((p, w) -> tupleElement(p, 1) <= w, price_periods,
            arrayResize([window_start], length(price_periods), window_start)) AS price_index,
        arrayElement(price_periods, price_index) AS price
    FROM {{database}}.usage_{{window}}
    ANY LEFT JOIN
    (
        SELECT
            provider,
            model,
            arraySort(groupArray((effective_from, input_per_mtok, cached_input_per_mtok, image_token_per_mtok,
                output_per_mtok, per_image))) AS price_periods
        FROM {{database}}.usage_prices FINAL
        GROUP BY provider, model
    ) AS prices USING (provider, model)
);
