-- daily_usage: requests, tokens and latency per UTC day, workspace and model.
--
-- Reads usage_1h: a day is 24 hourly rows per group and chunk piece instead
-- of 1440 minute rows (docs/analysts.md has the rows-read numbers).
--
-- Parameters (positional, bound by clickhouse-go in this order; ClickHouse
-- 18.16 has no {name:Type} query parameters):
--   1. from  String 'YYYY-MM-DD hh:mm:ss' UTC, inclusive
--   2. to    String 'YYYY-MM-DD hh:mm:ss' UTC, exclusive
SELECT
    toDate(window_start) AS day,
    workspace_id,
    provider,
    model,
    sum(requests) AS requests,
    sum(errors) AS errors,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(total_tokens) AS total_tokens,
    -- requests here is the alias above, sum(requests): an aggregate may not
    -- contain another, and ClickHouse resolves a name to its alias first.
    round(sum(latency_ms_sum) / requests, 1) AS avg_latency_ms,
    max(latency_ms_max) AS max_latency_ms
FROM usage_1h
WHERE window_start >= toDateTime(?, 'UTC')
  AND window_start < toDateTime(?, 'UTC')
GROUP BY day, workspace_id, provider, model
ORDER BY day, workspace_id, provider, model;
