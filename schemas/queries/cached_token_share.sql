-- cached_token_share: how much of the input was served from the provider's
-- prompt cache, per workspace and model.
--
-- cached_pct is a percentage of input_tokens rounded to 0.01; the sums are
-- exact. A cached_pct above 100 means events reported more cached than input
-- tokens (counted in inconsistent_events; see docs/event-contract.md).
--
-- Parameters (positional, bound by clickhouse-go in this order):
--   1. from  String 'YYYY-MM-DD hh:mm:ss' UTC, inclusive
--   2. to    String 'YYYY-MM-DD hh:mm:ss' UTC, exclusive
SELECT
    workspace_id,
    provider,
    model,
    sum(input_tokens) AS input_tokens,
    sum(input_cached_tokens) AS cached_tokens,
    round(100 * cached_tokens / input_tokens, 2) AS cached_pct,
    sum(inconsistent_events) AS inconsistent_events
FROM usage_1h
WHERE window_start >= toDateTime(?, 'UTC')
  AND window_start < toDateTime(?, 'UTC')
GROUP BY workspace_id, provider, model
HAVING input_tokens > 0
ORDER BY workspace_id, provider, model;
